// The console's shell: the session, the login page, the navigation of each role, and the router.
// Pages a role may not use are not linked, and opening one says so; the server refuses their
// requests anyway (the same authorization table as the API).

import { api, setCsrf, ApiError } from "./api.js";
import { h, page, message, field } from "./dom.js";
import { modulesPage, modulePage } from "./modules.js";
import { heldPage, bankJobsPage, bankJobPage, budgetsPage } from "./bank.js";
import { partnerJobsPage, partnerJobPage, newJobPage } from "./partner.js";
import { logPage, entryPage, verifyPage } from "./auditor.js";

let session = null;

const NAV = {
  bank: [["#/modules", "Modules"], ["#/held", "Held results"], ["#/jobs", "Jobs"], ["#/budgets", "Budgets"], ["#/log", "Audit log"], ["#/verify", "Verify the log"]],
  partner: [["#/modules", "Modules"], ["#/jobs", "Jobs"], ["#/new-job", "New job"]],
  auditor: [["#/log", "Audit log"], ["#/verify", "Verify the log"]],
};

// Each page and the roles that may open it.
const ROUTES = [
  [/^#\/modules$/, ["bank", "partner"], () => modulesPage(session)],
  [/^#\/modules\/([0-9a-f]{64})$/, ["bank", "partner"], (m) => modulePage(session, m[1])],
  [/^#\/held$/, ["bank"], () => heldPage()],
  [/^#\/budgets$/, ["bank"], () => budgetsPage()],
  [/^#\/jobs$/, ["bank", "partner"], () => (session.role === "bank" ? bankJobsPage() : partnerJobsPage())],
  [/^#\/jobs\/([A-Za-z0-9._-]+)$/, ["bank", "partner"], (m) => (session.role === "bank" ? bankJobPage(m[1]) : partnerJobPage(m[1]))],
  [/^#\/new-job$/, ["partner"], () => newJobPage()],
  [/^#\/log(?:\?(.*))?$/, ["bank", "auditor"], (m) => logPage(new URLSearchParams(m[1] || ""))],
  [/^#\/log\/(\d+)$/, ["bank", "auditor"], (m) => entryPage(m[1])],
  [/^#\/verify$/, ["bank", "auditor"], () => verifyPage()],
];

function nav() {
  const links = session ? NAV[session.role] : [];
  const current = location.hash.split("/").slice(0, 2).join("/");
  document.getElementById("nav").replaceChildren(
    h("ul", null, links.map(([href, label]) => h("li", null, h("a", { href, "aria-current": href === current ? "page" : null }, label)))),
  );
  const who = document.getElementById("who");
  who.replaceChildren(
    ...(session
      ? [`${session.party} (${session.role}) · room ${session.room} `, h("button", { type: "button", class: "link", onclick: logout }, "Log out")]
      : []),
  );
}

function loginPage(note) {
  const token = h("input", { type: "password", autocomplete: "off", required: true });
  const out = h("div", { "aria-live": "polite" }, note ? message(note, "error") : null);
  page(
    "Log in",
    h("form", { class: "card", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const s = await api("POST", "/console/login", { token: token.value });
        start(s);
      } catch (err) {
        out.replaceChildren(message(err.message, "error"));
        token.focus();
      }
    } },
    field("Your API token", token, "The token `strongroom party add` printed for your party (bank, partner or auditor). It is sent once; the browser then keeps a session cookie that scripts cannot read."),
    h("p", { class: "actions" }, h("button", { type: "submit" }, "Log in")),
    out),
  );
}

async function logout() {
  try {
    await api("POST", "/console/logout");
  } catch {
    // The session may be gone already.
  }
  session = null;
  setCsrf(null);
  nav();
  location.hash = "";
  loginPage();
}

function start(s) {
  session = s;
  setCsrf(s.csrf_token);
  if (!location.hash || location.hash === "#" || location.hash === "#/login") location.hash = NAV[s.role][0][0];
  else route();
}

async function route() {
  if (!session) return;
  nav();
  const hash = location.hash || NAV[session.role][0][0];
  for (const [pattern, roles, show] of ROUTES) {
    const m = hash.match(pattern);
    if (!m) continue;
    if (!roles.includes(session.role)) {
      page("Not available", message(`This page is not for a ${session.role}: it is for the ${roles.join(" or ")}.`, "error"));
      return;
    }
    try {
      await show(m);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        session = null;
        nav();
        loginPage("Your session ended; log in again.");
      } else {
        page("Something went wrong", message(err.message, "error"));
      }
    }
    return;
  }
  page("Not found", message("There is no such page.", "error"));
}

window.addEventListener("hashchange", route);

api("GET", "/console/session").then(start, () => loginPage());
