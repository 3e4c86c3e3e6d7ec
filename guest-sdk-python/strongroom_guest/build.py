"""`strongroom-guest build QUERY.py`: the partner's query as a component ready to submit.

1. Imports QUERY.py here (in this Python) to read its one `Query`, and writes the manifest as
   the TOML that `strongroom module embed-manifest` takes.
2. Runs componentize-py against the contract's world (`wit/query.wit`, a copy of the room's
   `contract/wit/0.2/query.wit`). componentize-py imports the query while it builds and
   snapshots the interpreter, so a fresh instance starts with everything imported: the room
   never re-runs start-up work per customer.
3. Runs `strongroom module embed-manifest`, which encodes the manifest with the format's one
   encoder, places it in the component's first core module and vets the result as a room would.

Nothing is written at OUT unless every step succeeded.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .manifest import ManifestError, Query

_PACKAGE = Path(__file__).resolve().parent


class BuildError(Exception):
    """A build step failed; the message says which and why, on one line."""


def find_query(path: Path) -> tuple[str, Query]:
    """Imports the file and returns the name and value of its one `Query`."""
    if not path.is_file():
        raise BuildError(f"{path}: no such file")
    if path.suffix != ".py":
        raise BuildError(f"{path}: a query is a Python file (.py)")
    name = path.stem
    if not name.isidentifier():
        raise BuildError(f"{path}: the file name must be a Python module name")
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except ManifestError as e:
            raise BuildError(f"{path}: {e}") from None
        except Exception as e:
            raise BuildError(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    found = [(k, v) for k, v in vars(module).items() if isinstance(v, Query)]
    if not found:
        raise BuildError(f"{path}: declares no Query (query = Query(...))")
    if len(found) > 1:
        raise BuildError(f"{path}: declares {len(found)} Query values ({', '.join(k for k, _ in found)}); "
                         "a module has one")
    attr, query = found[0]
    if query.function is None:
        raise BuildError(f"{path}: query '{query.name}' has no run function: decorate one with @{attr}.run")
    return attr, query


def _tool(name: str, given: str | None, env: str) -> str:
    candidates = [given, os.environ.get(env), shutil.which(name),
                  str(Path(sys.executable).parent / name)]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
        if c and shutil.which(c):
            return shutil.which(c)
    raise BuildError(f"{name} not found: put it on PATH or name it with {env}=PATH")


_CAUSE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Changed)): (.*)$")


def _run(step: str, argv: list[str]) -> None:
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        lines = [l.strip() for l in done.stdout.strip().splitlines() if l.strip()]
        # A Python exception raised while the query was imported or warmed: its last line says
        # what to fix; the toolchain's traceback around it does not.
        causes = [m for m in map(_CAUSE.match, lines) if m and m.group(1) != "AssertionError"]
        if causes:
            name, message = causes[-1].groups()
            raise BuildError(f"{step} failed: {name}: {message}")
        sys.stderr.write(done.stdout)
        detail = lines[-1] if lines else f"exit status {done.returncode}"
        raise BuildError(f"{step} failed: {detail}")


def build(query_file: Path, out: Path, strongroom: str | None = None, manifest_out: Path | None = None,
          quiet: bool = False, warm: bool = True) -> Query:
    query_file = query_file.resolve()
    attr, query = find_query(query_file)
    componentize = _tool("componentize-py", None, "COMPONENTIZE_PY")
    strongroom_bin = _tool("strongroom", strongroom, "STRONGROOM")
    say = (lambda *_: None) if quiet else (lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="strongroom-guest-") as tmp:
        tmp = Path(tmp)
        manifest = tmp / "manifest.toml"
        manifest.write_text(query.to_toml())
        # The package alone, not the site-packages it was installed into.
        shutil.copytree(_PACKAGE, tmp / "strongroom_guest",
                        ignore=shutil.ignore_patterns("__pycache__", "build.py", "wit"))
        entry = tmp / "strongroom_entry.py"
        # Warming runs in the snapshot's interpreter (warm.py); a failure there fails the build
        # with its message, which componentize-py prints last.
        entry.write_text(
            f"import {query_file.stem} as _query\n"
            "from strongroom_guest.world import make_world\n"
            f"WitWorld = make_world(_query.{attr})\n"
            + ("from strongroom_guest.warm import warm as _warm\n"
               f"_warm(_query.{attr}, _query)\n" if warm else ""))
        bare = tmp / "bare.wasm"
        say(f"componentize-py: building {query_file.name} (a minute or so)")
        argv = [componentize, "-d", str(_PACKAGE / "wit"), "-w", "query", "componentize",
                "-p", str(tmp), "-p", str(query_file.parent), "strongroom_entry", "-o", str(bare)]
        _run("componentize-py", argv)
        say(f"strongroom module embed-manifest: {query.name} {query.version}")
        partial = out.with_name(out.name + ".partial")
        _run("strongroom module embed-manifest",
             [strongroom_bin, "module", "embed-manifest", str(bare), "--manifest", str(manifest),
              "--out", str(partial)])
        os.replace(partial, out)
        if manifest_out:
            shutil.copyfile(manifest, manifest_out)
    say(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return query


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strongroom-guest",
        description="Build a Strongroom query module from Python (docs/guest-python.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build QUERY.py into a component with its manifest embedded")
    b.add_argument("query", type=Path, help="the query (a .py file declaring one Query)")
    b.add_argument("-o", "--out", type=Path, help="the component to write (default: QUERY.wasm)")
    b.add_argument("--strongroom", help="the strongroom command (default: on PATH, or $STRONGROOM)")
    b.add_argument("--manifest-out", type=Path, help="also write the manifest as TOML here")
    b.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    b.add_argument("--no-warm", action="store_true",
                   help="do not run the query on made-up rows before the snapshot (docs/guest-python.md)")
    m = sub.add_parser("manifest", help="print QUERY.py's manifest as TOML")
    m.add_argument("query", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "manifest":
            _, query = find_query(args.query.resolve())
            sys.stdout.write(query.to_toml())
            return 0
        out = args.out or args.query.with_suffix(".wasm")
        warm = not args.no_warm and os.environ.get("STRONGROOM_GUEST_WARM") != "0"
        build(args.query, out, args.strongroom, args.manifest_out, args.quiet, warm)
        return 0
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
