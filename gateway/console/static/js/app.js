// The console: a hash router over five pages, the sign-in screen, and the
// "last updated" clock. Each page's mount() returns a function that stops it.

import { api, csrfHeaders, setCsrfToken, whenUnauthorized } from "./api.js";
import { clock } from "./format.js";
import * as overview from "./pages/overview.js";
import * as replicas from "./pages/replicas.js";
import * as tasks from "./pages/tasks.js";
import * as task from "./pages/task.js";
import * as tryIt from "./pages/try.js";
import * as webhooks from "./pages/webhooks.js";
import * as sources from "./pages/sources.js";

const ADMIN_ONLY = new Set(["overview", "replicas"]); // their APIs need an admin key

const routes = [
  [/^\/?$/, "overview", overview],
  [/^\/replicas$/, "replicas", replicas],
  [/^\/tasks$/, "tasks", tasks],
  [/^\/task\/([0-9a-f]{32})$/, "tasks", task],
  [/^\/try$/, "try", tryIt],
  [/^\/webhooks$/, "webhooks", webhooks],
  [/^\/sources$/, "sources", sources],
];

const view = document.getElementById("view");
const live = document.getElementById("live");
let stop = () => {};

const ctx = {
  /** False once the session is known to be a client key's (its tenant's tasks only). */
  admin: true,
  /** Pages call this after every refresh: ok, or what went wrong. */
  live(ok, why = "") {
    live.textContent = ok ? `updated ${clock(new Date())}` : `not updating: ${why}`;
    live.classList.toggle("down", !ok);
  },
  navigate(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  },
};

function render() {
  stop();
  const [path, search] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(search || "");
  for (const [pattern, name, page] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (!ctx.admin && ADMIN_ONLY.has(name)) {
      location.hash = "#/tasks"; // a client key: its own tasks, not the operator's pages
      return;
    }
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.route === name);
    view.replaceChildren();
    document.title = `Percept · ${name === "try" ? "try it" : name}`;
    stop = page.mount(view, { match, params }, ctx) || (() => {});
    return;
  }
  location.hash = "#/";
}

// --- signing in (an admin API key becomes the HttpOnly session cookie) ------------
const login = document.getElementById("login");
const loginError = document.getElementById("login-error");
const signout = document.getElementById("signout");
whenUnauthorized(() => {
  if (!login.hidden) return;
  stop();
  stop = () => {};
  login.hidden = false;
  document.getElementById("login-key").focus();
  ctx.live(false, "signed out");
});
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  loginError.hidden = true;
  const key = document.getElementById("login-key").value;
  try {
    const response = await fetch("../api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ api_key: key }),
      credentials: "same-origin",
    });
    if (!response.ok) {
      let why = `Sign-in failed (${response.status}).`;
      if (response.status === 401) why = "That key was not accepted.";
      else if (response.status === 429) why = `Too many wrong keys: try again in ${response.headers.get("Retry-After")} s.`;
      else why = (await response.json().catch(() => null))?.error?.message || why; // 403: says why
      loginError.textContent = why;
      loginError.hidden = false;
      return;
    }
    setCsrfToken((await response.json()).csrf_token);
    login.hidden = true;
    document.getElementById("login-key").value = "";
    who().then(render);
  } catch (err) {
    loginError.textContent = `Cannot reach the gateway: ${err.message}`;
    loginError.hidden = false;
  }
});
signout.addEventListener("click", async () => {
  await fetch("../api/session", { method: "DELETE", headers: csrfHeaders(), credentials: "same-origin" }).catch(() => {});
  setCsrfToken("");
  signout.hidden = true;
  render();
});

/** Who the session is: with API keys on, their name and a way to sign out; a
 * client key sees the pages its tenant may use. */
function who() {
  return api("session").then((me) => {
    setCsrfToken(me.csrf_token);
    signout.hidden = me.auth !== "enabled";
    signout.textContent = `Sign out ${me.name || ""}`.trim();
    signout.title = `${me.role} of tenant ${me.tenant}`;
    ctx.admin = me.role === "admin";
    for (const a of document.querySelectorAll("nav a")) a.hidden = !ctx.admin && ADMIN_ONLY.has(a.dataset.route);
  }, () => {});
}

window.addEventListener("hashchange", render);
who().then(() => { if (login.hidden) render(); }); // signed out: the sign-in screen instead
