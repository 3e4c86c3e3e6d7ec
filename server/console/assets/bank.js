// The bank's pages: held results to release or withhold, every job, budgets and policies.

import { api } from "./api.js";
import { h, page, table, facts, message, field, num, short } from "./dom.js";
import { resultView, jobFacts } from "./results.js";

/** Jobs waiting for the bank's decision. */
export async function heldPage() {
  const jobs = await api("GET", "/v1/jobs?status=held");
  page(
    "Held results",
    jobs.length
      ? table(`Waiting for release or withholding (${jobs.length})`, ["job", "partner", "dataset", "module", "finished"],
          jobs.map((j) => [h("a", { href: `#/jobs/${j.job_id}` }, j.job_id), j.partner, j.dataset, short(j.module_sha256), j.finished_at]))
      : message("No result is waiting for a decision."),
  );
}

/** Every job, as the bank sees them. */
export async function bankJobsPage() {
  const jobs = await api("GET", "/v1/jobs");
  page(
    "Jobs",
    table(`All jobs (${jobs.length})`, ["job", "partner", "dataset", "module", "status", "outcome", "finished or submitted"],
      jobs.map((j) => [h("a", { href: `#/jobs/${j.job_id}` }, j.job_id), j.partner, j.dataset, short(j.module_sha256), j.status, j.outcome, j.finished_at])),
  );
}

/** One job, as the bank sees it: a held one with the release form. */
export async function bankJobPage(id) {
  const j = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  const content = [
    jobFacts(j, [["partner", j.partner]]),
    facts([
      ["outcome", j.outcome || "–"],
      ["finished", j.finished_at || "–"],
    ]),
  ];
  if (j.error) content.push(message(`Error: ${j.error}`, "error"));
  if (j.bank_detail) content.push(h("h2", null, "For the bank only"), h("pre", null, j.bank_detail));
  if (j.status === "held") {
    content.push(message("Held: the partner sees nothing until you decide. Below is the table exactly as the partner would receive it."));
    content.push(decisionForm(j));
  }
  if (j.result) {
    content.push(h("h2", null, j.status === "held" ? "The result as the partner would see it" : "The result"));
    content.push(...resultView(j.job_id, j.result, j.result_json, j.receipt));
  }
  page(`Job ${j.job_id}`, content);
}

function decisionForm(j) {
  const reason = h("textarea", { rows: "3", maxlength: "2000" });
  const out = h("div", { "aria-live": "polite" });
  const decide = async (release) => {
    if (!reason.value.trim()) {
      out.replaceChildren(message("Give a reason: it is kept in the audit log.", "error"));
      reason.focus();
      return;
    }
    try {
      const d = await api("POST", `/v1/jobs/${encodeURIComponent(j.job_id)}/decision`, { release, reason: reason.value });
      out.replaceChildren(message(`Result ${d.status}; the decision is in the audit log.`));
    } catch (err) {
      out.replaceChildren(message(`Not recorded: ${err.message}`, "error"));
    }
  };
  return h("form", { class: "card", onsubmit: (e) => e.preventDefault() },
    h("h2", null, "Release or withhold"),
    field("Reason (kept in the audit log)", reason),
    h("p", { class: "actions" },
      h("button", { type: "button", onclick: () => decide(true) }, "Release to the partner"),
      h("button", { type: "button", class: "danger", onclick: () => decide(false) }, "Withhold")),
    out);
}

/** Budgets spent and left per partner and dataset, and the policies in force. */
export async function budgetsPage() {
  const [budgets, policies] = await Promise.all([api("GET", "/v1/budgets"), api("GET", "/v1/policies")]);
  page(
    "Budgets and policies",
    table("Privacy budgets (zCDP rho; the total also as (epsilon, delta))", ["partner", "dataset", "total rho", "spent", "left", "jobs charged", "total as (epsilon, delta)"],
      budgets.map((b) => [b.partner, b.dataset, b.total_rho, b.spent_rho, b.remaining_rho, num(b.jobs, 0), b.total_epsilon_delta])),
    h("h2", null, "Policies in force"),
    policies.length ? policies.map((p) =>
      h("details", null, h("summary", null, `${p.partner} on ${p.dataset} (set ${p.set_at})`), h("pre", null, p.policy_toml))) : message("No policy is set."),
  );
}
