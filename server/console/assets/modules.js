// Modules: the bank reviews and decides; a partner uploads and follows vetting and decisions.

import { api, ApiError } from "./api.js";
import { h, page, table, facts, message, field, num, short } from "./dom.js";

function decisionText(d) {
  return d || "waiting for the bank";
}

/** The module list: for the bank, those waiting first; for a partner, its own, with an upload form. */
export async function modulesPage(session) {
  const modules = await api("GET", "/v1/modules");
  const link = (m) => h("a", { href: `#/modules/${m.module_sha256}` }, m.name);
  const row = (m) => [link(m), m.version, m.partner, m.mode, short(m.module_sha256), m.uploaded_at, decisionText(m.decision)];
  const headers = ["name", "version", "partner", "mode", "sha256", "uploaded", "decision"];
  const waiting = modules.filter((m) => !m.decision);
  const decided = modules.filter((m) => m.decision);
  const content = [];
  if (session.role === "partner") content.push(uploadForm());
  content.push(
    waiting.length
      ? table(`Waiting for a decision (${waiting.length})`, headers, waiting.map(row))
      : message("No module is waiting for a decision."),
    decided.length ? table(`Decided (${decided.length})`, headers, decided.map(row)) : null,
  );
  page("Modules", content);
}

function uploadForm() {
  const input = h("input", { type: "file", accept: ".wasm,application/wasm", required: true });
  const out = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const file = input.files[0];
        if (!file) return;
        out.replaceChildren(message(`Uploading ${file.name}…`));
        try {
          const done = await api("POST", "/v1/modules", new Uint8Array(await file.arrayBuffer()));
          out.replaceChildren(
            message(`Accepted by vetting: ${done.name} ${done.version} (${done.mode}); the bank decides next.`),
            h("p", null, h("a", { href: `#/modules/${done.module_sha256}` }, "See what the bank will review")),
          );
        } catch (err) {
          out.replaceChildren(message(`Refused: ${err.message}`, "error"));
        }
      },
    },
    h("h2", null, "Upload a module"),
    field("Query module (.wasm)", input, "It is vetted at once; the bank then approves or rejects it by its hash."),
    h("button", { type: "submit" }, "Upload"),
    out,
  );
  return form;
}

/** One module: what it imports, reads and releases, and what changed since the last approved version. */
export async function modulePage(session, sha) {
  const m = await api("GET", `/v1/modules/${encodeURIComponent(sha)}`);
  const content = [
    facts([
      ["name", m.name],
      ["version", m.version],
      ["partner", m.partner],
      ["sha256", h("code", null, m.module_sha256)],
      ["size", `${num(m.size, 0)} bytes`],
      ["mode", m.mode],
      ["toolchain", `${m.toolchain}: ${num(m.fuel_per_customer, 0)} fuel per customer by default`],
      ["groups per customer", String(m.max_groups_per_entity)],
      ["uploaded", m.uploaded_at],
      ["decision", decisionText(m.decision)],
    ]),
    h("h2", null, "What it reads"),
    table("Tables and columns", ["table", "columns"], m.reads.map((r) => [r.table, r.columns.join(", ")])),
    h("h2", null, "What it releases"),
    table(
      "Metrics and their bounds",
      ["metric", "kind", "grouped by", "bounds per contribution", "decimals", "contributions per group per customer"],
      m.metrics.map((x) => {
        const counted = x.kind === "count" || x.kind === "distinct";
        return [x.name, x.kind, x.key.join("; "), counted ? "–" : `${x.lower} to ${x.upper}`, counted ? "–" : String(x.decimals), String(x.max_contributions_per_group)];
      }),
    ),
    h("h2", null, "What it imports"),
    h("ul", { class: "imports" }, m.imports.map((i) => h("li", null, h("code", null, i)))),
    h("h2", null, "Since the last approved version"),
    changes(m),
  ];
  if (session.role === "bank") content.push(decisionForm(m));
  page(`Module ${m.name}`, content);
}

function changes(m) {
  const p = m.previous_approved;
  if (!p) return message(`No module named “${m.name}” was approved for ${m.partner} before: review it in full.`);
  const intro = h("p", null, `Compared with version ${p.version} (`, short(p.module_sha256), "), approved before:");
  if (p.changes.length === 0) return h("div", null, intro, message("Only the bytes differ: same reads, metrics, bounds and imports."));
  return h("div", null, intro, h("ul", { class: "changes" }, p.changes.map((c) => h("li", null, c))));
}

function decisionForm(m) {
  const reason = h("textarea", { rows: "3", maxlength: "2000" });
  const out = h("div", { "aria-live": "polite" });
  const decide = async (approve) => {
    if (!approve && !reason.value.trim()) {
      out.replaceChildren(message("Give a reason to reject: the partner and the log read it.", "error"));
      reason.focus();
      return;
    }
    try {
      const d = await api("POST", `/v1/modules/${m.module_sha256}/decision`, { partner: m.partner, approve, comment: reason.value });
      out.replaceChildren(message(`Module ${d.decision} for ${d.partner}; the decision is in the audit log.`));
    } catch (err) {
      out.replaceChildren(message(`Not recorded: ${err.message}`, "error"));
    }
  };
  return h(
    "form",
    { class: "card", onsubmit: (e) => e.preventDefault() },
    h("h2", null, "Decide"),
    field("Reason (kept in the audit log)", reason),
    h("p", { class: "actions" },
      h("button", { type: "button", onclick: () => decide(true) }, "Approve"),
      h("button", { type: "button", class: "danger", onclick: () => decide(false) }, "Reject")),
    out,
  );
}

export { ApiError };
