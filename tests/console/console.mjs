// The web console in a real browser: headless Chromium (Debian's package) driven by Playwright,
// against a room served by tests/console.rs, which passes what it set up in STRONGROOM_CONSOLE
// (JSON) and runs this script once per phase:
//
// - flows: each role's main flow (upload, review and approve a module by keyboard; preview and
//   submit a job; release a held result; read it with its intervals and download the receipt;
//   filter the log and verify it in the browser), authorization in the browser, a forged
//   cross-site form, markup in a module's name, and axe-core on every page;
// - tampered: the server now serves an altered entry: verification names it;
// - rolled-back: the server now serves an older log: verification calls it a rollback;
// - forked: that older log has grown past the verified one: verification calls it a fork.
//
// The browser's storage (session cookies, the auditor's pinned fingerprint and last verified
// checkpoint) is kept between phases in a file, as a real browser keeps it between visits.

import assert from "node:assert/strict";
import { readFileSync, existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const env = JSON.parse(process.env.STRONGROOM_CONSOLE);
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const phase = process.argv[2];

const browser = await chromium.launch({
  executablePath: env.chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

const contexts = {};
async function as(role) {
  if (!contexts[role]) {
    const stored = `${env.state_dir}/${role}.json`;
    contexts[role] = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
      storageState: existsSync(stored) ? stored : undefined,
    });
  }
  const page = await contexts[role].newPage();
  page.on("pageerror", (e) => {
    throw new Error(`a script error on ${role}'s page: ${e}`);
  });
  return page;
}

async function save(role) {
  await contexts[role].storageState({ path: `${env.state_dir}/${role}.json` });
}

function ok(what) {
  console.log(`ok: ${what}`);
}

async function shot(page, name) {
  if (!env.screenshots) return;
  mkdirSync(env.screenshots, { recursive: true });
  await page.screenshot({ path: `${env.screenshots}/${name}.png`, fullPage: false });
}

// axe-core, evaluated in the page (outside its Content-Security-Policy, as a developer tool is):
// no serious or critical violation on the page as it is now.
async function accessible(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 3) }));
  });
  const serious = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(serious, [], `accessibility violations on ${name}: ${JSON.stringify(serious, null, 1)}`);
  ok(`axe-core: no serious violation on ${name} (${result.length} minor)`);
}

// Tabs forward until `selector` has the focus: the keyboard alone reaches it.
async function tabTo(page, selector, text) {
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const here = await page.evaluate(([s, t]) => {
      const e = document.activeElement;
      return Boolean(e && e.matches(s) && (t === undefined || e.textContent === t));
    }, [selector, text]);
    if (here) return;
  }
  throw new Error(`the keyboard never reaches ${selector} ${text || ""}`);
}

async function login(role, token, { keyboard = false } = {}) {
  const page = await as(role);
  await page.goto(env.base);
  await page.getByRole("heading", { name: "Log in" }).waitFor();
  if (keyboard) {
    await tabTo(page, "input[type=password]");
    await page.keyboard.type(token);
    await page.keyboard.press("Enter");
  } else {
    await page.getByLabel("Your API token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
  }
  await page.locator("#who").getByText(`(${role})`).waitFor();
  const [cookie] = (await contexts[role].cookies()).filter((c) => c.name === "strongroom_session");
  assert.ok(cookie && cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict", `the session cookie is HttpOnly, Secure, SameSite=Strict: ${JSON.stringify(cookie)}`);
  assert.equal(await page.evaluate(() => document.cookie), "", "scripts cannot read the session cookie");
  return page;
}

async function flows() {
  // --- Login page, as nobody.
  const anon = await as("anon");
  await anon.goto(env.base);
  await anon.getByRole("heading", { name: "Log in" }).waitFor();
  await accessible(anon, "the login page");
  await shot(anon, "login");
  const headers = (await anon.request.get(env.base)).headers();
  assert.match(headers["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(headers["content-security-policy"], /require-trusted-types-for 'script'/);
  await anon.getByLabel("Your API token").fill("sr_0123456789abcdef_not-a-token");
  await anon.getByRole("button", { name: "Log in" }).click();
  await anon.getByRole("alert").getByText("not valid").waitFor();
  ok("a wrong token is refused with a clear message");

  // --- The partner uploads its module through the page.
  const partner = await login("partner", env.tokens.partner);
  await partner.getByLabel("Query module (.wasm)").setInputFiles(env.module_path);
  await partner.getByRole("button", { name: "Upload" }).click();
  await partner.getByText("Accepted by vetting").waitFor();
  ok("the partner uploads a module; vetting accepts it");
  await partner.goto(`${env.base}#/modules`);
  await partner.getByRole("table").first().waitFor();
  await accessible(partner, "the partner's modules");

  // --- The bank reviews it and approves it, by keyboard only.
  const bank = await login("bank", env.tokens.bank, { keyboard: true });
  await bank.getByRole("heading", { name: "Modules" }).waitFor();
  const waiting = bank.getByRole("table", { name: /Waiting for a decision/ });
  await waiting.waitFor();
  // Markup in a module's name is shown as text and runs nothing.
  await waiting.getByText(env.markup_name, { exact: true }).waitFor();
  assert.equal(await bank.locator("main img, main b").count(), 0, "no element was made from the module's name");
  assert.equal(await bank.evaluate(() => window.__pwned), undefined, "the module's name ran no script");
  ok("markup in a module's name stays text");
  await accessible(bank, "the bank's modules");
  await shot(bank, "bank-modules");
  await tabTo(bank, `a[href="#/modules/${env.module_sha256}"]`);
  await bank.keyboard.press("Enter");
  await bank.getByRole("heading", { name: /^Module spend-by-category/ }).waitFor();
  for (const fact of [env.module_sha256, "isolated", "transactions", "spend", "strongroom:query/data@0.2.0#read"]) {
    await bank.getByText(fact, { exact: false }).first().waitFor();
  }
  await bank.getByText("No module named").waitFor();
  await accessible(bank, "a module under review");
  await shot(bank, "bank-module-review");
  await tabTo(bank, "textarea");
  await bank.keyboard.type("Reviewed: aggregates only, bounded.");
  await tabTo(bank, "button", "Approve");
  await bank.keyboard.press("Enter");
  await bank.getByText("Module approved for socialco").waitFor();
  ok("the bank reviews a module (hash, size, mode, imports, reads, metrics) and approves it from the keyboard");

  // --- The partner previews the cost, submits, and waits for the bank's review of the result.
  await partner.goto(`${env.base}#/new-job`);
  await partner.getByLabel("Module", { exact: true }).selectOption(env.module_sha256);
  await partner.getByLabel("Cost").fill("0.5");
  await partner.getByRole("button", { name: "Preview the cost" }).click();
  const preview = partner.getByRole("table", { name: "What each released number would look like" });
  await preview.waitFor();
  await preview.getByText("spend").waitFor();
  await partner.getByText(/would charge rho 0\.5/).waitFor();
  await accessible(partner, "the cost preview");
  await shot(partner, "partner-new-job");
  await partner.getByRole("button", { name: "Submit the job" }).click();
  await partner.getByRole("heading", { name: /^Job job-/ }).waitFor();
  const jobId = (await partner.getByRole("heading", { name: /^Job job-/ }).textContent()).replace("Job ", "");
  await partner.getByText("The bank holds this result for review").waitFor({ timeout: 60_000 });
  assert.equal(await partner.locator("svg.chart").count(), 0, "a held result shows nothing");
  ok(`the partner previews the cost and submits job ${jobId}; it is held`);

  // --- The bank sees the table as the partner would, and releases it.
  await bank.goto(`${env.base}#/held`);
  await bank.getByRole("link", { name: jobId }).click();
  await bank.getByText("The result as the partner would see it").waitFor();
  await bank.locator("svg.chart").first().waitFor();
  await accessible(bank, "a held result");
  await shot(bank, "bank-held-result");
  await bank.getByLabel("Reason (kept in the audit log)").fill("Checked against the agreement.");
  await bank.getByRole("button", { name: "Release to the partner" }).click();
  await bank.getByText("Result released").waitFor();
  ok("the bank releases the held result with a reason");
  await bank.goto(`${env.base}#/budgets`);
  await bank.getByRole("table", { name: /Privacy budgets/ }).getByText("socialco").waitFor();
  await accessible(bank, "budgets and policies");
  await shot(bank, "bank-budgets");

  // --- The partner reads it: tables and charts with a 95% interval on every number; the receipt.
  await partner.goto(`${env.base}#/jobs/${jobId}`);
  await partner.reload();
  await partner.locator("svg.chart").first().waitFor({ timeout: 30_000 });
  await partner.getByText("holds the exact value with probability 95%").waitFor();
  const rows = partner.getByRole("table", { name: /^spend by/ }).locator("tbody tr");
  assert.ok((await rows.count()) > 0, "the released table has rows");
  assert.match(await rows.first().locator("td").nth(2).textContent(), /^-?[\d,.]+ to -?[\d,.]+$/, "every value has its 95% interval");
  await accessible(partner, "a released result");
  await shot(partner, "partner-result");
  const [download] = await Promise.all([partner.waitForEvent("download"), partner.getByRole("button", { name: "Download the signed receipt" }).click()]);
  const receipt = readFileSync(await download.path(), "utf8");
  assert.match(receipt, new RegExp(jobId), "the receipt names the job");
  ok("the partner reads the result with intervals and downloads its receipt");

  // --- The partner asks a question in SQL: explained with its noise, then run through the
  // engine the bank approved (and held, as every result of this partner's).
  await partner.goto(`${env.base}#/new-job`);
  await partner.getByLabel("a SQL query", { exact: true }).check();
  await partner.getByLabel("SQL query", { exact: true }).fill("SELECT WITH DIFFERENTIAL_PRIVACY region, COUNT(DISTINCT customer_id) AS customers\nFROM customers GROUP BY regoin");
  await partner.getByLabel("Cost").fill("0.2");
  await partner.getByRole("button", { name: "Preview the cost" }).click();
  await partner.getByRole("alert").getByText(/line 2.*regoin.*did you mean/i).waitFor();
  await partner.getByLabel("SQL query", { exact: true }).fill("SELECT WITH DIFFERENTIAL_PRIVACY OPTIONS (max_groups_contributed = 1)\n  region, COUNT(DISTINCT customer_id) AS customers\nFROM customers WHERE tenure_years >= @years GROUP BY region");
  await partner.getByLabel("Parameters").fill("years=2");
  await partner.getByRole("button", { name: "Preview the cost" }).click();
  await partner.getByText("The query compiles; your policy lets it run.").waitFor();
  await partner.getByRole("table", { name: "What each released number would look like" }).getByText("customers").first().waitFor();
  await accessible(partner, "a SQL query explained");
  await shot(partner, "partner-sql");
  await partner.getByRole("button", { name: "Submit the job" }).click();
  await partner.getByText("The bank holds this result for review").waitFor({ timeout: 60_000 });
  ok("the partner explains a SQL query (a misspelt column refused with its place), then runs it");

  // --- Authorization in the browser.
  await partner.goto(`${env.base}#/held`);
  await partner.getByRole("heading", { name: "Not available" }).waitFor();
  const bankOnly = await partner.evaluate(async () => (await fetch("/v1/audit/entries")).status);
  assert.equal(bankOnly, 403, "the server refuses a partner's session the bank's and auditor's routes");
  await partner.goto(`${env.base}#/jobs/${env.other_job}`);
  await partner.getByRole("heading", { name: "Something went wrong" }).waitFor();
  await partner.getByText("no such job").waitFor();
  ok("a partner's session cannot open bank pages or another partner's job");

  // --- A forged form on another origin of the same site: the cookie goes along, the CSRF token does not.
  const target = `${env.base}v1/modules/${env.markup_sha256}/decision`;
  const attacker = http.createServer((_, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<!doctype html><form method="POST" action="${target}" enctype="text/plain">` +
      `<input name='{"partner":"socialco","approve":true,"comment":"forged","x":"' value='"}'></form>` +
      `<script>document.forms[0].submit()</script>`);
  });
  await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
  for (const host of ["127.0.0.1", "localhost"]) {
    const forged = await as("bank");
    await forged.goto(`http://${host}:${attacker.address().port}/`);
    await forged.waitForURL(target);
    const problem = JSON.parse(await forged.locator("body").innerText());
    assert.equal(problem.code, host === "localhost" ? "unauthorized" : "csrf_rejected", `the forged form from ${host} is refused: ${JSON.stringify(problem)}`);
    await forged.close();
  }
  attacker.close();
  const still = await bank.evaluate(async (sha) => (await (await fetch(`/v1/modules/${sha}`)).json()).decision, env.markup_sha256);
  assert.equal(still, null, "the forged decision was not recorded");
  ok("a forged cross-site form is refused: csrf_rejected from another origin of the site, no cookie from another site");

  // --- The security team filters the log and verifies it in the browser.
  const auditor = await login("auditor", env.tokens.auditor);
  await auditor.getByRole("heading", { name: "Audit log" }).waitFor();
  await auditor.getByLabel("Event kind").selectOption("result.released_by_bank");
  await auditor.getByRole("button", { name: "Filter" }).click();
  const released = auditor.getByRole("table", { name: /^1 of \d+ entries/ });
  await released.waitFor();
  await accessible(auditor, "the audit log");
  await shot(auditor, "auditor-log");
  await released.locator("tbody a").first().click();
  await auditor.getByText("Checked against the agreement.").waitFor();
  ok("the auditor filters the log by event kind and reads an entry's details");
  await auditor.goto(`${env.base}#/verify`);
  await auditor.getByLabel(/Room key fingerprint/).fill("0000-0000-0000-0000-0000");
  await auditor.getByRole("button", { name: "Verify the log" }).click();
  await auditor.getByRole("alert").getByText("not the pinned").waitFor();
  ok("keys that do not match the pinned fingerprint are not trusted");
  await auditor.getByLabel(/Room key fingerprint/).fill(env.fingerprint);
  await auditor.getByRole("button", { name: "Verify the log" }).click();
  await auditor.getByText("The log verifies").waitFor();
  await accessible(auditor, "a verified log");
  await shot(auditor, "auditor-verified");
  ok("the auditor's browser verifies the log against the pinned fingerprint");
  await save("auditor");
}

async function verifyAgain(expect, name) {
  const auditor = await as("auditor");
  await auditor.goto(`${env.base}#/verify`);
  await auditor.getByLabel(/Room key fingerprint/).waitFor();
  assert.equal(await auditor.getByLabel(/Room key fingerprint/).inputValue(), env.fingerprint, "the fingerprint stays pinned");
  await auditor.getByRole("button", { name: "Verify the log" }).click();
  const alert = auditor.getByRole("alert");
  await alert.getByText("The log does NOT verify").waitFor();
  const text = await alert.innerText();
  assert.match(text, expect, `the failure says what is wrong: ${text}`);
  await shot(auditor, name);
  return { auditor, text };
}

// On a failure, what each open page showed: the first thing to read in a CI log.
async function dumpPages() {
  for (const [role, context] of Object.entries(contexts)) {
    for (const p of context.pages()) {
      const text = await p.locator("main").innerText().catch(() => "(no main)");
      console.log(`--- ${role}'s page ${p.url()}:\n${text.slice(0, 2000)}`);
    }
  }
}

if (phase === "flows") {
  try {
    await flows();
  } catch (err) {
    await dumpPages();
    throw err;
  }
} else if (phase === "tampered") {
  const { auditor, text } = await verifyAgain(new RegExp(`First bad entry: entry ${env.bad_entry}\\.`), "auditor-tampered");
  await auditor.getByRole("link", { name: `entry ${env.bad_entry}` }).waitFor();
  ok(`a tampered log is caught, and its first bad entry named: ${text.trim()}`);
} else if (phase === "rolled-back") {
  const { text } = await verifyAgain(/rollback: the previous checkpoint covers \d+ entries, the new one only \d+/, "auditor-rolled-back");
  ok(`a rolled-back log is caught against the checkpoint this browser kept: ${text.trim()}`);
} else if (phase === "forked") {
  const { text } = await verifyAgain(/fork: the log of \d+ entries does not extend the previous checkpoint of \d+/, "auditor-forked");
  ok(`a forked log is caught against the checkpoint this browser kept: ${text.trim()}`);
} else {
  throw new Error(`unknown phase ${phase}`);
}
await browser.close();
