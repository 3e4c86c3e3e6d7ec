// The partner's pages: its jobs and their results, and a new job with its cost preview.

import { api } from "./api.js";
import { h, page, table, facts, message, field, num, short } from "./dom.js";
import { resultView, jobFacts } from "./results.js";

/** The partner's jobs. */
export async function partnerJobsPage() {
  const jobs = await api("GET", "/v1/jobs");
  page(
    "Jobs",
    h("p", null, h("a", { href: "#/new-job", class: "button" }, "New job")),
    jobs.length
      ? table(`Your jobs (${jobs.length})`, ["job", "dataset", "module", "state", "status", "submitted"],
          jobs.map((j) => [h("a", { href: `#/jobs/${j.job_id}` }, j.job_id), j.dataset, short(j.module_sha256), j.state, j.status || "–", j.submitted_at]))
      : message("No job yet."),
  );
}

let refresh = null;

/** One job: its state until it ends, then its result and receipt. */
export async function partnerJobPage(id) {
  clearTimeout(refresh);
  const j = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  const content = [
    jobFacts(j),
    facts([["visible from", j.release_at || "–"]]),
  ];
  if (j.error) content.push(message(`Refused: ${j.error}`, "error"));
  if (j.state === "queued" || j.state === "running") {
    content.push(message(`The job is ${j.state}; this page refreshes by itself.`));
    refresh = setTimeout(() => {
      if (location.hash === `#/jobs/${id}`) partnerJobPage(id).catch(() => {});
    }, 1000);
  } else if (j.status === "held") {
    content.push(message("The bank holds this result for review; it appears here once released (this page checks every few seconds)."));
    refresh = setTimeout(() => {
      if (location.hash === `#/jobs/${id}`) partnerJobPage(id).catch(() => {});
    }, 3000);
  } else if (j.status === "withheld") {
    content.push(message("The bank withheld this result."));
  }
  if (j.result) content.push(...resultView(j.job_id, j.result, j.result_json, j.receipt));
  else if (j.receipt) content.push(...resultView(j.job_id, null, null, j.receipt));
  page(`Job ${j.job_id}`, content);
}

/** Parameters typed one `name=value` per line, as an object. */
function parameters(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at < 1) throw new Error(`parameter line “${trimmed}”: write name=value`);
    out[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return out;
}

function noiseRows(metrics) {
  return metrics.map((m) => [
    m.name,
    m.kind,
    m.noise_std === null || m.noise_std === undefined ? "depends on the group's count" : num(m.noise_std),
    m.half_width_95 === null || m.half_width_95 === undefined ? "–" : `± ${num(m.half_width_95)}${m.kind === "mean" ? " (at 1,000 contributions)" : ""}`,
  ]);
}

/**
 * A new job: an approved module or a SQL query, a dataset and a cost; what the cost buys is
 * shown before anything is spent, then the job is submitted.
 */
export async function newJobPage() {
  const [modules, datasets] = await Promise.all([api("GET", "/v1/modules"), api("GET", "/v1/datasets")]);
  if (datasets.length === 0) {
    page("New job", message("No dataset is open to you yet."));
    return;
  }
  const approved = modules.filter((m) => m.decision === "approved");
  const useModule = h("input", { type: "radio", name: "kind", value: "module", checked: approved.length > 0, disabled: approved.length === 0 });
  const useSql = h("input", { type: "radio", name: "kind", value: "sql", checked: approved.length === 0 });
  const module = h("select", null, approved.map((m) => h("option", { value: m.module_sha256 }, `${m.name} ${m.version} (${m.module_sha256.slice(0, 12)}…)`)));
  const sql = h("textarea", { rows: "8", class: "code", spellcheck: "false" });
  const params = h("textarea", { rows: "2", class: "code", spellcheck: "false" });
  const dataset = h("select", null, datasets.map((d) => h("option", { value: d.name }, `${d.name} (${num(d.entities, 0)} customers)`)));
  const cost = h("input", { type: "text", inputmode: "decimal", value: "0.1", required: true });
  const moduleFields = h("div", null, field("Module", module, approved.length === 0 ? "No module of yours is approved yet." : null));
  const sqlFields = h("div", null,
    field("SQL query", sql, "BigQuery's differential-privacy dialect (docs/sql.md); the room compiles it and the SQL engine the bank approved runs it."),
    field("Parameters", params, "One name=value per line, for the query's @name parameters."));
  const preview = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "button", disabled: true }, "Submit the job");
  const kind = () => (useSql.checked ? "sql" : "module");
  const showKind = () => {
    moduleFields.hidden = kind() !== "module";
    sqlFields.hidden = kind() !== "sql";
    submit.disabled = true;
  };
  const body = () => {
    const common = { dataset: dataset.value, cost: cost.value.trim() };
    return kind() === "sql" ? { ...common, sql: sql.value, parameters: parameters(params.value) } : { ...common, module_sha256: module.value };
  };
  const showPreview = async () => {
    submit.disabled = true;
    try {
      if (kind() === "module") {
        const p = await api("POST", "/v1/jobs/preview", body());
        preview.replaceChildren(
          message(`This job would charge rho ${p.charge_rho} (${p.mechanism}); rho ${p.remaining_rho} is left: ${p.jobs_left === null ? "it charges nothing" : `${num(p.jobs_left, 0)} job(s) of this cost`}.`),
          table("What each released number would look like", ["metric", "kind", "noise standard deviation", "value: 95% interval", "customers: 95% interval"],
            p.metrics.map((m, i) => [...noiseRows(p.metrics)[i], `± ${num(m.entities_half_width_95, 0)}`])),
          h("p", { class: "hint" }, `Groups with fewer than ${num(p.min_group_size, 0)} customers are not released.`),
        );
        submit.disabled = p.jobs_left === 0;
      } else {
        const e = await api("POST", "/v1/sql/explain", body());
        preview.replaceChildren(
          e.allowed
            ? message(`The query compiles; your policy lets it run. Template ${e.query_sha256.slice(0, 16)}…`)
            : message(`The query compiles, but your policy runs only templates the bank approved: ask it to approve template ${e.query_sha256}.`, "error"),
          h("p", null, `Reads ${e.reads.map((r) => `${r.table} (${r.columns.join(", ")})`).join("; ")}; grouped by ${e.group_key.join("; ")}.`),
          table("What each released number would look like", ["metric", "kind", "noise standard deviation", "value: 95% interval"], noiseRows(e.metrics)),
        );
        submit.disabled = !e.allowed;
      }
    } catch (err) {
      preview.replaceChildren(message(`The room would refuse this job: ${err.message}`, "error"));
    }
  };
  submit.addEventListener("click", async () => {
    try {
      const q = await api("POST", "/v1/jobs", body());
      location.hash = `#/jobs/${q.job_id}`;
    } catch (err) {
      preview.append(message(`Not submitted: ${err.message}`, "error"));
    }
  });
  for (const control of [module, dataset, cost, sql, params]) control.addEventListener("input", () => { submit.disabled = true; });
  for (const radio of [useModule, useSql]) radio.addEventListener("change", showKind);
  showKind();
  page(
    "New job",
    h("form", { class: "card", onsubmit: (e) => { e.preventDefault(); showPreview(); } },
      h("fieldset", null, h("legend", null, "Ask with"),
        h("label", { class: "choice" }, useModule, " an approved module"),
        h("label", { class: "choice" }, useSql, " a SQL query")),
      moduleFields,
      sqlFields,
      field("Dataset", dataset),
      field("Cost", cost, "rho under a Gaussian policy, epsilon under a Laplace one"),
      h("p", { class: "actions" }, h("button", { type: "submit" }, "Preview the cost"), submit),
      preview),
  );
}
