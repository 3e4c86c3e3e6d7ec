// The API, called with the session cookie: every state-changing request carries the session's
// CSRF token in a header, which the server checks (a cross-site form cannot set it).

let csrfToken = null;

/** Remembers the session's CSRF token. */
export function setCsrf(token) {
  csrfToken = token;
}

/** An error answer: `problem` is the RFC 9457 document (code, detail). */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** Calls the API; resolves to the parsed JSON answer (null for 204). */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken || "";
  let payload;
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    headers["Content-Type"] = "application/octet-stream";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 204) return null;
  const text = await response.text();
  let value = null;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!response.ok) throw new ApiError(response.status, value || { detail: text });
  return value;
}

/** Every audit entry, 1,000 at a time; `progress(fetched)` is told after each page. */
export async function allEntries(progress = () => {}) {
  const out = [];
  for (;;) {
    const page = await api("GET", `/v1/audit/entries?from=${out.length}&limit=1000`);
    out.push(...page);
    progress(out.length);
    if (page.length < 1000) return out;
  }
}
