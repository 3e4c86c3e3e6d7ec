// A released result as the partner reads it: per metric, a table and a chart of the released
// values, each with the 95% interval the noise gives (the noise's distribution is public, so
// the interval is exact), and the receipt to download.

import { h, table, chart, num, download, facts } from "./dom.js";

/** What any view of a job says about it (the bank's view adds its own fields to `extra`). */
export function jobFacts(j, extra = []) {
  return facts([
    ...extra,
    ["dataset", j.dataset],
    ["module", h("a", { href: `#/modules/${j.module_sha256}` }, h("code", null, j.module_sha256))],
    ["cost", j.cost],
    ["parameters", Object.entries(j.parameters).map(([k, v]) => `${k} = ${v}`).join(", ") || "none"],
    ["state", j.state],
    ["status", j.status || "–"],
    ["submitted", j.submitted_at],
  ]);
}

function explanation(result) {
  const level = Math.round((result.confidence ?? 0.95) * 100);
  return h(
    "p",
    { class: "explain" },
    `Every number below is noised (${result.mechanism}). The interval beside it holds the exact value with probability ${level}%: ` +
      `the noise is drawn from a known distribution, so its width is known before the job runs. ` +
      `Groups with fewer than ${num(result.threshold, 0)} customers (after noise) are not released.`,
  );
}

function metricSection(metric) {
  const rows = metric.groups.map((g) => [
    g.labels.join(" · "),
    num(g.value),
    g.low !== undefined ? `${num(g.low)} to ${num(g.high)}` : "–",
    num(g.entities, 0),
  ]);
  return h(
    "section",
    { class: "metric" },
    h("h2", null, `${metric.name} (${metric.kind})`),
    chart(metric),
    table(`${metric.name} by ${(metric.key || []).join(", ")}`, [(metric.key || []).join(" · ") || "group", "value", "95% interval", "customers (noised)"], rows),
  );
}

/** The result's sections; `receipt` and `resultJson` are offered as downloads when given. */
export function resultView(jobId, result, resultJson, receipt) {
  const out = [];
  if (result && Array.isArray(result.metrics)) {
    out.push(explanation(result));
    for (const m of result.metrics) out.push(metricSection(m));
  } else if (result) {
    out.push(h("pre", null, JSON.stringify(result, null, 2)));
  }
  const buttons = [];
  if (receipt) {
    buttons.push(h("button", { type: "button", onclick: () => download(`${jobId}.receipt.txt`, receipt) }, "Download the signed receipt"));
  }
  if (resultJson) {
    buttons.push(h("button", { type: "button", onclick: () => download(`${jobId}.json`, resultJson, "application/json") }, "Download the result (JSON)"));
  }
  if (buttons.length) out.push(h("p", { class: "actions" }, buttons));
  return out;
}
