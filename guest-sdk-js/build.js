#!/usr/bin/env node
// `strongroom-guest-js build QUERY.js`: the partner's query as a component ready to submit.
//
// 1. Imports QUERY.js here (in Node) to read its exported `Query`, and writes the manifest as
//    the TOML that `strongroom module embed-manifest` takes.
// 2. Bundles an entry point (the query, this package, and the world's `run` export) into one
//    module with rolldown, leaving the room's interfaces as imports.
// 3. Runs componentize-js against the contract's world (`wit/query.wit`, a copy of the room's
//    `contract/wit/0.2/query.wit`). componentize-js evaluates the module while it builds and
//    snapshots the engine, so a fresh instance starts with everything loaded.
// 4. Runs `strongroom module embed-manifest`, which encodes the manifest with the format's one
//    encoder, places it in the component's first core module and vets the result as a room would.
//
// Nothing is written at OUT unless every step succeeded.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, copyFileSync, accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const PACKAGE = dirname(fileURLToPath(import.meta.url));

class BuildError extends Error {}

/** Imports the file and returns the name and value of its one exported `Query`. */
export async function findQuery(file) {
  if (!existsSync(file)) throw new BuildError(`${file}: no such file`);
  if (![".js", ".mjs"].includes(extname(file))) throw new BuildError(`${file}: a query is a JavaScript module (.js or .mjs)`);
  let module;
  try {
    module = await import(pathToFileURL(file).href);
  } catch (e) {
    const what = e?.name === "ManifestError" ? e.message : `importing it failed: ${e?.name ?? "Error"}: ${e?.message ?? e}`;
    throw new BuildError(`${file}: ${what}`);
  }
  const found = Object.entries(module).filter(
    ([, v]) => v && typeof v.toToml === "function" && Array.isArray(v.metrics) && typeof v.run === "function",
  );
  if (found.length === 0) throw new BuildError(`${file}: exports no Query (export const query = new Query({...}))`);
  if (found.length > 1) {
    throw new BuildError(`${file}: exports ${found.length} Query values (${found.map(([k]) => k).join(", ")}); a module has one`);
  }
  return found[0];
}

function tool(name, given, env) {
  const candidates = [given, process.env[env]];
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir) candidates.push(join(dir, name));
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      if (statSync(c).isFile()) return c;
    } catch {
      // not this one
    }
  }
  throw new BuildError(`${name} not found: put it on PATH or name it with ${env}=PATH`);
}

function run(step, argv) {
  const done = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  if (done.status !== 0) {
    const text = `${done.stdout ?? ""}${done.stderr ?? ""}`.trim();
    const lines = text.split("\n").filter((l) => l.trim());
    process.stderr.write(text ? `${text}\n` : "");
    throw new BuildError(`${step} failed: ${lines.at(-1) ?? done.error?.message ?? `exit status ${done.status}`}`);
  }
}

export async function build(queryFile, out, { strongroom, manifestOut, quiet } = {}) {
  const file = resolve(queryFile);
  const [name, query] = await findQuery(file);
  const strongroomBin = tool("strongroom", strongroom, "STRONGROOM");
  const say = quiet ? () => {} : (m) => process.stderr.write(`${m}\n`);
  const tmp = mkdtempSync(join(tmpdir(), "strongroom-guest-js-"));
  try {
    const manifest = join(tmp, "manifest.toml");
    writeFileSync(manifest, query.toToml());
    const entry = join(tmp, "entry.js");
    writeFileSync(
      entry,
      [
        `import * as schema from "strongroom:query/schema@0.2.0";`,
        `import { installSchema, warm } from ${JSON.stringify(join(PACKAGE, "index.js"))};`,
        `import { exportRun } from ${JSON.stringify(join(PACKAGE, "world.js"))};`,
        `import { ${name} as query } from ${JSON.stringify(file)};`,
        `installSchema(schema);`,
        `export const run = exportRun(query);`,
        process.env.STRONGROOM_GUEST_WARM === "0" ? `` : `warm(query);`,
        ``,
      ].join("\n"),
    );
    say(`rolldown: bundling ${basename(file)}`);
    const { rolldown } = await import("rolldown");
    const bundle = await rolldown({
      input: entry,
      external: [/^strongroom:/, /^wasi:/],
      resolve: { alias: { "strongroom-guest": join(PACKAGE, "index.js") } },
      logLevel: "warn",
    });
    const bundled = join(tmp, "bundle.js");
    await bundle.write({ file: bundled, format: "esm" });
    await bundle.close();
    say(`componentize-js: building ${query.name} (a minute or so)`);
    const { componentize } = await import("@bytecodealliance/componentize-js");
    let component;
    try {
      ({ component } = await componentize({
        sourcePath: bundled,
        witPath: join(PACKAGE, "wit"),
        worldName: "query",
        // stdio (console.log, captured by the room), random (seeded) and clocks (frozen) stay.
        disableFeatures: ["http", "fetch-event"],
      }));
    } catch (e) {
      // An error thrown while the module was evaluated (a declaration, or warming): its own
      // line says what to fix; the snapshot tool's lines around it do not.
      const text = String(e?.message ?? e);
      const cause = text.split("\n").map((l) => l.match(/\b([A-Z]\w*Error): (.+)$/)).find(Boolean);
      throw new BuildError(`componentize-js failed: ${cause ? `${cause[1]}: ${cause[2]}` : text.split("\n")[0]}`);
    }
    const bare = join(tmp, "bare.wasm");
    writeFileSync(bare, component);
    say(`strongroom module embed-manifest: ${query.name} ${query.version}`);
    const partial = `${out}.partial`;
    run("strongroom module embed-manifest", [strongroomBin, "module", "embed-manifest", bare, "--manifest", manifest, "--out", partial]);
    renameSync(partial, out);
    if (manifestOut) copyFileSync(manifest, manifestOut);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  say(`wrote ${out} (${statSync(out).size.toLocaleString("en-US")} bytes)`);
  return query;
}

const USAGE = `usage: strongroom-guest-js build QUERY.js [-o OUT.wasm] [--strongroom BIN] [--manifest-out FILE] [-q]
       strongroom-guest-js manifest QUERY.js

Build a Strongroom query module from JavaScript (docs/guest-js.md).`;

export async function main(argv) {
  const [command, ...rest] = argv;
  const options = {};
  const positional = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const value = () => {
      if (i + 1 >= rest.length) throw new BuildError(`${a} needs a value`);
      return rest[++i];
    };
    if (a === "-o" || a === "--out") options.out = value();
    else if (a === "--strongroom") options.strongroom = value();
    else if (a === "--manifest-out") options.manifestOut = value();
    else if (a === "-q" || a === "--quiet") options.quiet = true;
    else if (a === "-h" || a === "--help") {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith("-")) throw new BuildError(`unknown option ${a}\n${USAGE}`);
    else positional.push(a);
  }
  if (!["build", "manifest"].includes(command) || positional.length !== 1) {
    if (command === "-h" || command === "--help") {
      console.log(USAGE);
      return 0;
    }
    throw new BuildError(USAGE);
  }
  const [queryFile] = positional;
  if (command === "manifest") {
    const [, query] = await findQuery(resolve(queryFile));
    process.stdout.write(query.toToml());
    return 0;
  }
  const out = options.out ?? queryFile.replace(/\.m?js$/, "") + ".wasm";
  await build(queryFile, out, options);
  return 0;
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`error: ${e instanceof BuildError ? e.message : e?.stack ?? e}`);
      process.exit(1);
    },
  );
}
