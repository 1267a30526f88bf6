// The Resources page: the connector's resource definitions (connector-spec §4.1), added,
// updated and removed with add/update/removeGatewayResource.

import { device2 } from "./api.js";
import { field, h, heading, messageBox, run, showValue } from "./ui.js";

const FORMATS = ["string", "number", "boolean"];

// "a, b" -> ["a", "b"]; a JSON array is taken as it is (for values holding commas);
// boolean resources get booleans. Numbers and ranges ("9-11") stay text: the server parses them.
function parseAllowed(text, format) {
  const trimmed = text.trim();
  if (!trimmed) return [];
  let items;
  if (trimmed.startsWith("[")) {
    try {
      items = JSON.parse(trimmed);
    } catch (error) {
      throw new Error(`Allowed values: invalid JSON array (${error.message})`);
    }
  } else {
    items = trimmed.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (format === "boolean") {
    return items.map((v) => (v === "true" ? true : v === "false" ? false : v));
  }
  return items;
}

function allowedText(allowed) {
  if (!allowed || !allowed.length) return "";
  return allowed.some((v) => typeof v === "string" && v.includes(","))
    ? JSON.stringify(allowed) : allowed.join(", ");
}

export async function render(container) {
  const pageError = messageBox();
  const tbody = h("tbody");
  const table = h("table", { class: "list", id: "resource-list" },
    h("caption", { class: "visually-hidden" }, "Resources"),
    h("thead", {}, h("tr", {}, ["Alias", "Format", "Unit", "Settable", "Sync", "Allowed",
      "Initial", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);

  // One form adds, or (after Edit) updates the resource named in the read-only alias field.
  const error = messageBox();
  const done = messageBox("status");
  const alias = h("input", { name: "alias", required: true, autocomplete: "off" });
  const format = h("select", { name: "format" },
    FORMATS.map((f) => h("option", { value: f }, f)));
  const unit = h("input", { name: "unit", autocomplete: "off" });
  const settable = h("input", { type: "checkbox", name: "settable", id: "res-settable" });
  const sync = h("input", { type: "checkbox", name: "sync", id: "res-sync", checked: true });
  const allowed = h("input", { name: "allowed", autocomplete: "off" });
  const initial = h("input", { name: "initial", autocomplete: "off" });
  const submit = h("button", { type: "submit" }, "Add resource");
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel");
  const title = h("h2", { id: "resource-form-title" }, "Add a resource");
  let editing = null;
  const form = h("form", { class: "panel", "aria-labelledby": "resource-form-title" },
    title,
    field("Alias", alias, "No dot and no dollar sign; at most 128 characters."),
    field("Format", format),
    field("Unit", unit),
    h("div", { class: "field check" }, settable, h("label", { for: "res-settable" },
      "Settable (the cloud may set it)")),
    h("div", { class: "field check" }, sync, h("label", { for: "res-sync" },
      "Sync (the device acknowledges set values)")),
    field("Allowed values", allowed, "Comma-separated (ranges such as 9-11 for numbers), "
      + "or a JSON array. Empty: any value."),
    field("Initial value", initial, "Only for settable resources; empty: none."),
    h("div", { class: "actions" }, submit, cancel), error, done);

  function stopEditing() {
    editing = null;
    form.reset();
    alias.readOnly = false;
    title.textContent = "Add a resource";
    submit.textContent = "Add resource";
    cancel.hidden = true;
  }

  function edit(name, defn) {
    editing = name;
    error.clear();
    done.clear();
    alias.value = name;
    alias.readOnly = true;
    format.value = defn.format;
    unit.value = defn.unit || "";
    settable.checked = Boolean(defn.settable);
    sync.checked = defn.sync !== false;
    allowed.value = allowedText(defn.allowed);
    initial.value = defn.initial === null || defn.initial === undefined
      ? "" : String(defn.initial);
    title.textContent = `Update ${name}`;
    submit.textContent = "Update resource";
    cancel.hidden = false;
    alias.focus();
  }

  async function load() {
    let settings;
    try {
      settings = await device2("getGatewaySettings");
    } catch (error) {
      pageError.show(error);
      return;
    }
    pageError.clear();
    const resources = settings.resources || {};
    const names = Object.keys(resources).sort();
    tbody.replaceChildren(...names.map((name) => {
      const defn = resources[name];
      const rowError = messageBox();
      const editButton = h("button", { type: "button", class: "secondary",
        "aria-label": `Edit ${name}` }, "Edit");
      editButton.addEventListener("click", () => edit(name, defn));
      const removeButton = h("button", { type: "button", class: "danger",
        "aria-label": `Remove ${name}` }, "Remove");
      removeButton.addEventListener("click", () => run(removeButton, rowError, async () => {
        if (!window.confirm(`Remove the resource ${name}? `
          + "Every device's value of it is dropped.")) return;
        await device2("removeGatewayResource", { alias: name });
        if (editing === name) stopEditing();
        await load();
      }));
      return h("tr", { dataset: { alias: name } },
        h("th", { scope: "row" }, name),
        h("td", {}, defn.format),
        h("td", {}, defn.unit || ""),
        h("td", {}, defn.settable ? "yes" : "no"),
        h("td", {}, defn.sync === false ? "no" : "yes"),
        h("td", {}, allowedText(defn.allowed)),
        h("td", {}, defn.initial === null ? "" : showValue(defn.initial)),
        h("td", { class: "row-actions" }, editButton, removeButton, rowError));
    }));
    if (!names.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 8, class: "empty" },
        "No resources yet.")));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done.clear();
    run(submit, error, async () => {
      const definition = {
        format: format.value,
        unit: unit.value,
        settable: settable.checked,
        sync: sync.checked,
        allowed: parseAllowed(allowed.value, format.value),
        initial: initial.value === "" ? null : initial.value,
      };
      const name = editing || alias.value.trim();
      if (editing) {
        await device2("updateGatewayResource", { alias: name, ...definition });
        done.show(`Updated ${name}.`);
      } else {
        await device2("addGatewayResource", { alias: name, ...definition });
        done.show(`Added ${name}.`);
      }
      stopEditing();
      await load();
    });
  });
  cancel.addEventListener("click", stopEditing);

  container.append(heading("Resources"), pageError, table, form);
  await load();
}
