// The console's entry point: the login form, the connector picker and the hash router
// (#/devices, #/devices/<identity>, #/resources, #/content, #/logs, #/settings).
// A page is a function render(container, route) that may return a cleanup function (the logs
// page closes its stream with it) when the user goes elsewhere.

import { listConnectors, onUnauthorized, session } from "./api.js";
import * as content from "./content.js";
import * as devices from "./devices.js";
import * as logs from "./logs.js";
import * as resources from "./resources.js";
import * as settings from "./settings.js";

const PAGES = {
  devices: (container, route) => (route.parts.length > 1
    ? devices.renderDevice(container, route) : devices.renderList(container, route)),
  resources: resources.render,
  content: content.render,
  logs: logs.render,
  settings: settings.render,
};

const $ = (id) => document.getElementById(id);
let cleanup = null;
let generation = 0;
let loggingIn = false;

function stopPage() {
  generation += 1;
  if (cleanup) {
    try { cleanup(); } catch (error) { console.error(error); }
  }
  cleanup = null;
  $("page").replaceChildren();
}

function showLogin(message = "", kind = "error") {
  session.token = null;
  stopPage();
  $("nav").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  const box = $("login-message");
  box.className = kind;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = message;
  box.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

// "#/devices/dev%201?offset=25" -> {page: "devices", parts: ["devices", "dev 1"], params}
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?", 2);
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch (_) { return p; }
  });
  return { page: parts[0] || "devices", parts, params: new URLSearchParams(query) };
}

async function route() {
  if (!session.token || !session.connector) return;
  const current = parseHash();
  const render = PAGES[current.page];
  if (!render) {
    location.hash = "#/devices";
    return;
  }
  stopPage();
  const mine = generation;
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.page === current.page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const container = document.createElement("div");
  $("page").append(container);
  let done = null;
  try {
    done = await render(container, current);
  } catch (error) {
    container.append(Object.assign(document.createElement("p"), {
      className: "error", role: "alert", textContent: String(error) }));
  }
  if (mine !== generation) {  // the user went elsewhere while this page was loading
    if (typeof done === "function") done();
    return;
  }
  cleanup = typeof done === "function" ? done : null;
  const title = container.querySelector("h1");
  if (title) title.focus({ preventScroll: true });
}

async function enter() {
  let connectors;
  try {
    connectors = await listConnectors();
  } catch (error) {
    if (error.status !== 401) showLogin(String(error));
    return;  // a 401 has shown the login form already (onUnauthorized)
  } finally {
    loggingIn = false;
  }
  if (!connectors.length) {
    showLogin("The server has no connector.");
    return;
  }
  const picker = $("connector");
  picker.replaceChildren(...connectors.map((c) => {
    const option = document.createElement("option");
    option.value = c.id;
    option.textContent = c.name ? `${c.name} (${c.id})` : c.id;
    return option;
  }));
  const known = connectors.some((c) => c.id === session.connector);
  if (!known) session.connector = (connectors.find((c) => c.default) || connectors[0]).id;
  picker.value = session.connector;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("session").hidden = false;
  if (!location.hash || location.hash === "#" || location.hash === "#/") {
    location.hash = "#/devices";  // the hashchange event renders it
  } else {
    await route();
  }
}

function start() {
  onUnauthorized((error) => {
    showLogin(loggingIn
      ? `That token was refused (${error}).`
      : `The server refused the token (${error}). Log in again.`);
    loggingIn = false;
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    session.token = token;
    loggingIn = true;
    $("login-message").hidden = true;
    enter();
  });
  $("logout").addEventListener("click", () => showLogin("Logged out.", "status"));
  $("connector").addEventListener("change", (event) => {
    session.connector = event.target.value;
    route();
  });
  window.addEventListener("hashchange", route);
  if (session.token) enter();
  else showLogin();
}

start();
