// Building the page from data without ever parsing markup: elements are created one by one and
// everything a partner, a guest or the server wrote is set as text. The page's
// Content-Security-Policy enforces Trusted Types with no policy, so a string written as markup
// would throw instead of rendering.

const SVG = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value") el.value = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  return el;
}

/** An HTML element: h("p", {class: "x"}, "text", child, ...). */
export function h(tag, attrs, ...children) {
  return append(setAttributes(document.createElement(tag), attrs), children);
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  return append(setAttributes(document.createElementNS(SVG, tag), attrs), children);
}

/** Replaces the main area with a page: its heading (focused, for keyboard and screen reader users) and content. */
export function page(title, ...content) {
  const main = document.getElementById("main");
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...content.flat().filter(Boolean));
  document.title = `${title} · Strongroom console`;
  heading.focus();
  return main;
}

/** A table with a caption, column headers and rows of cells (strings or nodes). */
export function table(caption, headers, rows) {
  return h(
    "table",
    null,
    h("caption", null, caption),
    h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", null, rows.map((r) => h("tr", null, r.map((c) => h("td", null, c))))),
  );
}

/** A description list of [term, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

/** A message region: `role=status` for news, `role=alert` for errors. */
export function message(text, kind = "status") {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** A labelled form control. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

/** A number for people: grouped digits, at most `decimals` decimals. */
export function num(x, decimals = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: decimals, minimumFractionDigits: 0 });
}

/** A hash, shortened for tables (the full hash is in its title and on the detail page). */
export function short(hash) {
  return h("code", { title: hash }, `${String(hash).slice(0, 12)}…`);
}

/** Offers `text` as a file to save. */
export function download(name, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * A horizontal bar chart of one released metric: each group's released value, and its 95%
 * interval as a line with end marks. The same numbers are in the table beside it.
 */
export function chart(metric) {
  const groups = metric.groups.slice(0, 40);
  if (groups.length === 0) return null;
  const rowH = 22;
  const labelW = 220;
  const plotW = 440;
  const width = labelW + plotW + 20;
  const height = groups.length * rowH + 30;
  const lo = Math.min(0, ...groups.map((g) => Math.min(g.low ?? g.value, g.value)));
  const hi = Math.max(0, ...groups.map((g) => Math.max(g.high ?? g.value, g.value)));
  const span = hi - lo || 1;
  const x = (v) => labelW + ((v - lo) / span) * plotW;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    role: "img",
    "aria-label": `${metric.name}: released value per group with its 95% interval (the table lists the same numbers)`,
    class: "chart",
  });
  groups.forEach((g, i) => {
    const y = 10 + i * rowH;
    const label = g.labels.join(" · ");
    svg.append(
      s("text", { x: labelW - 8, y: y + 14, "text-anchor": "end", class: "label" }, label.length > 32 ? `${label.slice(0, 31)}…` : label),
      s("rect", { x: Math.min(x(0), x(g.value)), y: y + 3, width: Math.abs(x(g.value) - x(0)), height: rowH - 8, class: "bar" }),
    );
    if (g.low !== undefined && g.high !== undefined) {
      svg.append(
        s("line", { x1: x(g.low), x2: x(g.high), y1: y + 9, y2: y + 9, class: "interval" }),
        s("line", { x1: x(g.low), x2: x(g.low), y1: y + 4, y2: y + 14, class: "interval" }),
        s("line", { x1: x(g.high), x2: x(g.high), y1: y + 4, y2: y + 14, class: "interval" }),
      );
    }
  });
  svg.append(s("line", { x1: x(0), x2: x(0), y1: 5, y2: height - 20, class: "axis" }));
  svg.append(s("text", { x: labelW, y: height - 5, class: "tick" }, num(lo, 0)));
  svg.append(s("text", { x: labelW + plotW, y: height - 5, "text-anchor": "end", class: "tick" }, num(hi, 0)));
  return svg;
}
