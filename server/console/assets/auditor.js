// The security team's pages: the audit log with filters, and its verification in this browser.
//
// Verification does not trust the server: the page fetches the room's published keys, the signed
// checkpoint and every entry, and hands them to the log verifier (strongroom-verify compiled to
// WebAssembly), which checks the keys against the fingerprint the auditor pinned, every entry's
// signed tree head, the checkpoint's root, and that the log extends the last checkpoint this
// browser verified (so a rolled-back or forked log is caught on the next visit).

import { api, allEntries } from "./api.js";
import { h, page, table, message, field, num } from "./dom.js";

const PINNED = "strongroom.pinned-fingerprint";
const checkpointKey = (fp) => `strongroom.verified-checkpoint.${fp.replace(/[^0-9a-f]/gi, "").toLowerCase()}`;

let entriesCache = null;

function parsed(entries) {
  return entries.map((e) => {
    let v = {};
    try {
      v = JSON.parse(e.entry);
    } catch {
      v = { event: "(not JSON)" };
    }
    return { index: e.index, value: v };
  });
}

function party(v) {
  return [v.actor, v.partner, v.party, v.by].filter(Boolean).join(" ");
}

/** The log, newest first, with filters by event kind, party, job and time. */
export async function logPage(params) {
  entriesCache = parsed(await allEntries());
  const kinds = [...new Set(entriesCache.map((e) => e.value.event))].sort();
  const kind = h("select", null, h("option", { value: "" }, "any"), kinds.map((k) => h("option", { value: k }, k)));
  const who = h("input", { type: "text", value: params.get("party") || "" });
  const job = h("input", { type: "text", value: params.get("job") || "" });
  const from = h("input", { type: "datetime-local" });
  const to = h("input", { type: "datetime-local" });
  kind.value = params.get("event") || "";
  const results = h("div", { "aria-live": "polite" });
  const apply = () => {
    const f = from.value ? new Date(from.value).getTime() : -Infinity;
    const t = to.value ? new Date(to.value).getTime() : Infinity;
    const shown = entriesCache.filter(({ value: v }) => {
      const at = Date.parse(v.time);
      return (!kind.value || v.event === kind.value) &&
        (!who.value || party(v).includes(who.value.trim())) &&
        (!job.value || String(v.job || "").includes(job.value.trim())) &&
        (Number.isNaN(at) || (at >= f && at <= t));
    }).reverse();
    results.replaceChildren(
      table(`${num(shown.length, 0)} of ${num(entriesCache.length, 0)} entries${shown.length > 500 ? " (the newest 500 shown)" : ""}`,
        ["index", "time", "event", "actor", "job"],
        shown.slice(0, 500).map(({ index, value: v }) => [h("a", { href: `#/log/${index}` }, String(index)), v.time || "–", v.event, v.actor || "–", v.job || "–"])),
    );
  };
  page(
    "Audit log",
    h("form", { class: "card filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
      field("Event kind", kind), field("Party", who), field("Job", job), field("From", from), field("To", to),
      h("p", { class: "actions" }, h("button", { type: "submit" }, "Filter"))),
    results,
  );
  apply();
}

/** One entry's details. */
export async function entryPage(index) {
  const [e] = await api("GET", `/v1/audit/entries?from=${Number(index)}&limit=1`);
  if (!e || e.index !== Number(index)) {
    page(`Entry ${index}`, message("No such entry.", "error"));
    return;
  }
  const v = JSON.parse(e.entry);
  page(`Entry ${index}: ${v.event}`,
    h("pre", { class: "entry" }, JSON.stringify(v, null, 2)),
    h("p", null, "Signature over the tree head that ends with it: ", h("code", null, e.tree_head_signature)),
    h("p", null, h("a", { href: "#/log" }, "Back to the log")));
}

let verifier = null;

async function loadVerifier() {
  if (!verifier) {
    const bytes = await (await fetch("/console/verifier.wasm")).arrayBuffer();
    const { instance } = await WebAssembly.instantiate(bytes, {});
    verifier = instance.exports;
  }
  return verifier;
}

function runVerifier(ex, request) {
  const bytes = new TextEncoder().encode(JSON.stringify(request));
  const at = ex.input(bytes.length) >>> 0;
  new Uint8Array(ex.memory.buffer, at, bytes.length).set(bytes);
  const len = ex.verify() >>> 0;
  const out = ex.output() >>> 0;
  return JSON.parse(new TextDecoder().decode(new Uint8Array(ex.memory.buffer, out, len)));
}

/** Verifies the log in this browser against the pinned fingerprint; shows the outcome. */
async function verify(fingerprint, out) {
  out.replaceChildren(message("Fetching the room's keys, the signed checkpoint and every entry…"));
  const room = await api("GET", "/v1/room");
  const checkpoint = await api("GET", "/v1/audit/checkpoint");
  const status = message(`Fetching ${num(checkpoint.size, 0)} entries…`);
  out.replaceChildren(status);
  const entries = await allEntries((n) => {
    status.textContent = `Fetched ${num(n, 0)} of ${num(checkpoint.size, 0)} entries…`;
  });
  const stored = JSON.parse(localStorage.getItem(checkpointKey(fingerprint)) || "null");
  out.replaceChildren(message(`Verifying ${num(entries.length, 0)} entries here, in this browser…`));
  const answer = runVerifier(await loadVerifier(), {
    public_keys: room.public_keys,
    pinned_fingerprint: fingerprint,
    checkpoint: checkpoint.note,
    previous: stored ? stored.note : null,
    entries,
  });
  if (answer.ok) {
    const when = new Date().toISOString();
    localStorage.setItem(checkpointKey(fingerprint), JSON.stringify({ note: answer.checkpoint, size: answer.size, verified_at: when }));
    out.replaceChildren(
      h("p", { class: "message ok", role: "status" },
        `The log verifies: ${num(answer.entries, 0)} entries, every one signed by the room whose keys have the fingerprint you pinned (${answer.fingerprint}); ` +
        `the checkpoint covers ${num(answer.size, 0)} entries with root ${answer.root}.` +
        (stored ? ` It extends the checkpoint of ${num(stored.size, 0)} entries this browser verified at ${stored.verified_at}.` : " This browser now remembers this checkpoint: a later log must extend it.")),
    );
  } else {
    const parts = [h("strong", null, "The log does NOT verify. "), String(answer.message).replace(/\.?$/, ".")];
    if (answer.entry !== null && answer.entry !== undefined) {
      parts.push(" First bad entry: ", h("a", { href: `#/log/${answer.entry}`, class: "bad-entry" }, `entry ${answer.entry}`), ".");
    }
    out.replaceChildren(h("div", { class: "message error", role: "alert" }, parts),
      h("p", null, "The checkpoint this browser verified last is kept unchanged."));
  }
}

/** The verification page: the pinned fingerprint, the last verified checkpoint, and the check. */
export async function verifyPage() {
  const pinned = localStorage.getItem(PINNED) || "";
  const input = h("input", { type: "text", value: pinned, autocomplete: "off", spellcheck: "false", size: "30" });
  const out = h("div", { "aria-live": "polite" });
  const stored = pinned ? JSON.parse(localStorage.getItem(checkpointKey(pinned)) || "null") : null;
  page(
    "Verify the log",
    h("p", null, "This page checks the log itself, with the verifier compiled to WebAssembly: it does not take the server's word. " +
      "Pin the room's key fingerprint from the room's published keys (room.pub, or `strongroom room pubkey`), not from this server."),
    h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      const fp = input.value.trim();
      if (!/^[0-9a-f]{4}(-?[0-9a-f]{4}){4}$/i.test(fp)) {
        out.replaceChildren(message("A fingerprint is 20 hex digits, in groups of 4 (abcd-ef01-…).", "error"));
        input.focus();
        return;
      }
      localStorage.setItem(PINNED, fp);
      try {
        await verify(fp, out);
      } catch (err) {
        out.replaceChildren(message(`Could not verify: ${err.message}`, "error"));
      }
    } },
    field("Room key fingerprint (pinned in this browser)", input, stored ? `Last verified here: ${stored.size} entries at ${stored.verified_at}.` : "No checkpoint verified in this browser yet."),
    h("p", { class: "actions" }, h("button", { type: "submit" }, "Verify the log"))),
    out,
  );
}
