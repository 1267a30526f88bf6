// Small DOM helpers shared by the pages. Text is always set as text (never innerHTML), so an
// identity, tag or log detail can hold any characters without becoming markup.

// h("button", {type: "button", onclick: f}, "Save") -> <button type="button">Save</button>
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "checked") {
      el.checked = el.defaultChecked = Boolean(value);  // form.reset() keeps the default
    } else if (key === "value" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

let ids = 0;

// A unique element id for label/input pairs.
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

// A labelled control: field("Identity", h("input", {...})) -> [label, input] with for/id set.
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

// A message line: role=alert for errors (read out at once), role=status for results.
export function messageBox(kind = "error") {
  const el = h("p", { class: kind, role: kind === "error" ? "alert" : "status", hidden: true });
  el.show = (text) => {
    // An ApiError says "404 not_found: …"; a plain Error just its message.
    el.textContent = text instanceof Error && text.constructor === Error
      ? text.message : String(text);
    el.hidden = false;
  };
  el.clear = () => {
    el.textContent = "";
    el.hidden = true;
  };
  return el;
}

// Run an async action from a button: the button is disabled meanwhile, the error box cleared
// first and showing the API error if it fails. Resolves to the action's result (or undefined).
export async function run(button, errorBox, action) {
  if (errorBox) errorBox.clear();
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    if (errorBox) errorBox.show(error);
    else console.error(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// µs since the epoch -> "2026-11-27 12:19:09" (local time); empty for null.
export function formatTime(us) {
  if (us === null || us === undefined) return "";
  const d = new Date(Number(us) / 1000);
  if (Number.isNaN(d.getTime())) return String(us);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A stored value for display: strings as they are, everything else as JSON; "—" for none.
export function showValue(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// The page's heading; the router moves focus to it so a screen reader announces the page.
export function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}
