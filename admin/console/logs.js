// The Logs page (connector-spec §8): the event or debug log, live, filtered by identity and
// IP, newest first, with pause. Live entries come from the Server-Sent Events route
// GET …/logs/stream, read with fetch() (EventSource cannot send the Authorization header);
// when that route does not answer 200 with text/event-stream the page polls getLogs instead.
// The recent history comes from getLogs either way, merged without duplicates.

import { ApiError, compact, connectorPath, device2, send } from "./api.js";
import { field, formatTime, h, heading, messageBox } from "./ui.js";

const MAX_ROWS = 500;
const POLL_MS = 2000;
const RETRY_MS = 3000;
const BACKLOG = 200;

function entryKey(e) {
  return [e.timestamp_us, e.type, e.identity, e.ip, e.connection_id,
    JSON.stringify(e.detail ?? null)].join("|");
}

function detailText(detail) {
  if (detail === null || detail === undefined) return "";
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}

// Parse a text/event-stream body, calling onEvent(name, data) per event; resolves when the
// server ends the stream.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let name = "message";
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(name, data.join("\n"));
        name = "message";
        data = [];
      } else if (!line.startsWith(":")) {  // ":" starts a comment (the heartbeat)
        const colon = line.indexOf(":");
        const fieldName = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (fieldName === "data") data.push(text);
        else if (fieldName === "event") name = text;
      }
    }
  }
}

export async function render(container) {
  const typeSelect = h("select", { name: "type" },
    h("option", { value: "event" }, "event"), h("option", { value: "debug" }, "debug"));
  const identity = h("input", { name: "identity", autocomplete: "off" });
  const ip = h("input", { name: "ip", autocomplete: "off" });
  const pause = h("button", { type: "button", class: "secondary", "aria-pressed": "false" },
    "Pause");
  const clear = h("button", { type: "button", class: "secondary" }, "Clear");
  const filters = h("form", { class: "toolbar", role: "search", "aria-label": "Filter logs" },
    field("Log", typeSelect), field("Identity", identity), field("IP address", ip),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"), pause, clear));
  const status = h("p", { class: "summary", role: "status", id: "log-status" });
  const note = h("p", { class: "muted", id: "log-note" });
  const error = messageBox();
  const tbody = h("tbody");
  const table = h("table", { class: "list logs", id: "log-list" },
    h("caption", { class: "visually-hidden" }, "Log entries, newest first"),
    h("thead", {}, h("tr", {}, ["Time", "Type", "Identity", "IP", "Protocol", "Detail"]
      .map((t) => h("th", { scope: "col" }, t)))),
    tbody);

  let feed = null;     // {abort()} of the running stream or poll
  let paused = false;
  let held = [];       // entries that arrived while paused
  let mode = "";
  const seen = new Map();

  function showStatus() {
    const live = mode === "stream" ? "Live (stream)"
      : mode === "poll" ? `Live (polling every ${POLL_MS / 1000} s)` : "Connecting…";
    status.textContent = paused
      ? `Paused: ${held.length} new ${held.length === 1 ? "entry" : "entries"} waiting.`
      : live;
  }

  function row(e) {
    return h("tr", { dataset: { ts: String(e.timestamp_us), type: e.type } },
      h("td", { class: "time" }, formatTime(e.timestamp_us)),
      h("td", {}, h("span", { class: `badge log-${e.type}` }, e.type)),
      h("td", {}, e.identity ?? ""), h("td", {}, e.ip ?? ""), h("td", {}, e.protocol ?? ""),
      h("td", { class: "detail" }, detailText(e.detail)));
  }

  function show(e) {
    // Newest first: walk down from the top to the first older row (usually the top one).
    const el = row(e);
    let before = tbody.firstElementChild;
    while (before && Number(before.dataset.ts) > e.timestamp_us) {
      before = before.nextElementSibling;
    }
    tbody.insertBefore(el, before);
    while (tbody.children.length > MAX_ROWS) tbody.lastElementChild.remove();
  }

  function receive(e) {
    if (!e || typeof e !== "object" || e.timestamp_us === undefined) return;
    const key = entryKey(e);
    if (seen.has(key)) return;
    seen.set(key, true);
    if (seen.size > 4 * MAX_ROWS) seen.delete(seen.keys().next().value);
    if (paused) {
      held.push(e);
      if (held.length > MAX_ROWS) held.shift();
      showStatus();
    } else {
      show(e);
    }
  }

  function query() {
    return compact({ type: typeSelect.value, identity: identity.value.trim(),
      ip: ip.value.trim() });
  }

  async function backlog(args) {
    const entries = await device2("getLogs", { ...args, limit: BACKLOG });
    entries.forEach(receive);
  }

  function start() {
    const controller = new AbortController();
    let timer = null;
    const stopped = () => controller.signal.aborted;
    feed = { abort() { controller.abort(); clearTimeout(timer); } };
    const args = query();
    mode = "";
    showStatus();

    async function poll(since) {
      if (stopped()) return;
      try {
        const entries = await device2("getLogs", since
          ? { ...args, since, limit: MAX_ROWS } : { ...args, limit: BACKLOG });
        error.clear();
        entries.forEach(receive);
        if (entries.length) since = entries[entries.length - 1].timestamp_us;
      } catch (failure) {
        if (stopped()) return;
        error.show(failure);
      }
      if (!stopped()) timer = setTimeout(() => poll(since), POLL_MS);
    }

    function startPolling() {
      mode = "poll";
      showStatus();
      poll(null);
    }

    async function stream() {
      let response;
      try {
        const params = new URLSearchParams(args);
        response = await send("GET", connectorPath(`/logs/stream?${params}`),
          { signal: controller.signal, headers: { Accept: "text/event-stream" } });
      } catch (failure) {
        if (stopped()) return;
        if (failure instanceof ApiError && (failure.status === 404 || failure.status === 405)) {
          startPolling();  // no stream route on this server
          return;
        }
        error.show(failure);
        timer = setTimeout(stream, RETRY_MS);
        return;
      }
      const type = response.headers.get("Content-Type") || "";
      if (!type.startsWith("text/event-stream") || !response.body) {
        if (response.body) response.body.cancel().catch(() => {});
        startPolling();
        return;
      }
      mode = "stream";
      error.clear();
      showStatus();
      backlog(args).catch((failure) => { if (!stopped()) error.show(failure); });
      try {
        await readEvents(response, (name, data) => {
          let value;
          try { value = JSON.parse(data); } catch (_) { return; }
          if (name === "overflow") {
            const dropped = typeof value === "number" ? value : value?.dropped;
            note.textContent = `${dropped ?? "Some"} entries were dropped: the console `
              + "fell behind the log.";
          } else {
            receive(value);
          }
        });
      } catch (_) {
        if (stopped()) return;
      }
      if (!stopped()) {  // the server ended the stream (a restart?): reconnect
        mode = "";
        showStatus();
        timer = setTimeout(stream, RETRY_MS);
      }
    }

    stream();
  }

  function restart() {
    if (feed) feed.abort();
    tbody.replaceChildren();
    seen.clear();
    held = [];
    note.textContent = "";
    error.clear();
    start();
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    restart();
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      held.forEach(show);
      held = [];
    }
    showStatus();
  });
  clear.addEventListener("click", () => {
    tbody.replaceChildren();
    held = [];
    showStatus();
  });

  container.append(heading("Logs"), filters, status, note, error, table);
  start();
  return () => { if (feed) feed.abort(); };
}
