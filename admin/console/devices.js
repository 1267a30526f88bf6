// The Devices pages: the list (search by identity glob, filter by status and tag, sort,
// paging, add one, bulk CSV, lock/unlock, revoke, remove) and one device's page (its record,
// state with set values, tags). Everything goes through the Device2 operations.

import { compact, device2 } from "./api.js";
import {
  field, formatTime, h, heading, messageBox, run, showValue,
} from "./ui.js";

const STATUSES = ["whitelisted", "provisioned", "locked", "reprovision", "devmode"];
const SORTS = ["identity", "status", "lastseen", "lastip", "created"];
const PAGE_SIZES = ["25", "50", "100"];

export function deviceHref(identity) {
  return `#/devices/${encodeURIComponent(identity)}`;
}

function select(name, options, value, anyLabel) {
  const el = h("select", { name });
  if (anyLabel) el.append(h("option", { value: "" }, anyLabel));
  for (const option of options) {
    el.append(h("option", { value: option, selected: option === value }, option));
  }
  return el;
}

function tagText(tags) {
  return (tags || []).map((t) => `${t.name}=${t.value}`).join(", ");
}

// lock/unlock, revoke and remove: shared by the list rows and the device page.
async function lock(identity, locked) {
  return device2("updateIdentity", { identity, locked });
}

async function revoke(identity) {
  if (!window.confirm(`Revoke the credentials of ${identity}? `
    + "It is disconnected and must provision again.")) return false;
  await device2("updateIdentity", { identity, auth: { expire: 0 } });
  return true;
}

async function remove(identity) {
  if (!window.confirm(`Remove ${identity}? Its state and tags are deleted.`)) return false;
  await device2("removeIdentity", { identity });
  return true;
}

// -- the list ------------------------------------------------------------------------------

export async function renderList(container, route) {
  const p = route.params;
  const query = {
    identity: p.get("identity") || "",
    status: p.get("status") || "",
    tag_name: p.get("tag_name") || "",
    tag_value: p.get("tag_value") || "",
    sort: SORTS.includes(p.get("sort")) ? p.get("sort") : "identity",
    order: p.get("order") === "desc" ? "desc" : "asc",
    limit: PAGE_SIZES.includes(p.get("limit")) ? p.get("limit") : "25",
    offset: Math.max(0, parseInt(p.get("offset") || "0", 10) || 0),
  };

  const filterError = messageBox();
  const filters = h("form", { class: "toolbar", role: "search", "aria-label": "Filter devices" },
    field("Identity (glob)", h("input", { name: "identity", value: query.identity,
      placeholder: "e.g. sensor-*" })),
    field("Status", select("status", STATUSES, query.status, "any")),
    field("Tag name", h("input", { name: "tag_name", value: query.tag_name })),
    field("Tag value", h("input", { name: "tag_value", value: query.tag_value })),
    field("Sort by", select("sort", SORTS, query.sort)),
    field("Order", select("order", ["asc", "desc"], query.order)),
    field("Per page", select("limit", PAGE_SIZES, query.limit)),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", class: "secondary", onclick: () => {
        filters.reset();
        for (const el of filters.elements) if (el.name && el.tagName === "INPUT") el.value = "";
        filters.elements.status.value = "";
        filters.elements.sort.value = "identity";
        filters.elements.order.value = "asc";
        filters.requestSubmit();
      } }, "Clear")));

  const summary = h("p", { class: "summary", role: "status" });
  const tbody = h("tbody");
  const prev = h("button", { type: "button", class: "secondary" }, "Previous page");
  const next = h("button", { type: "button", class: "secondary" }, "Next page");
  const table = h("table", { class: "list", id: "device-list" },
    h("caption", { class: "visually-hidden" }, "Devices"),
    h("thead", {}, h("tr", {},
      ["Identity", "Status", "Online", "Last IP", "Last seen", "Tags", "Actions"]
        .map((t) => h("th", { scope: "col" }, t)))),
    tbody);

  // The URL keeps the filters (a link to a filtered list works; Back returns to it).
  function pushQuery() {
    const params = new URLSearchParams(compact({
      ...query,
      sort: query.sort === "identity" ? "" : query.sort,
      order: query.order === "asc" ? "" : query.order,
      limit: query.limit === "25" ? "" : query.limit,
      offset: query.offset || "",
    }));
    const hash = `#/devices${params.toString() ? `?${params}` : ""}`;
    if (hash !== location.hash) history.pushState(null, "", hash);
  }

  async function load() {
    filterError.clear();
    const args = compact({
      identity: query.identity, status: query.status, tag_name: query.tag_name,
      tag_value: query.tag_value,
      sort: query.order === "desc" ? `-${query.sort}` : query.sort,
      limit: Number(query.limit), offset: query.offset,
    });
    let result;
    try {
      result = await device2("listIdentities", args);
    } catch (error) {
      filterError.show(error);
      summary.textContent = "";
      tbody.replaceChildren();
      return;
    }
    const { devices, total, mayLoadMore } = result;
    tbody.replaceChildren(...devices.map(row));
    if (!devices.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 7, class: "empty" },
        total ? "No devices on this page." : "No devices match.")));
    }
    summary.textContent = devices.length
      ? `Showing ${query.offset + 1}–${query.offset + devices.length} of ${total}`
      : `${total} devices`;
    prev.disabled = query.offset === 0;
    next.disabled = !mayLoadMore;
  }

  function row(device) {
    const error = messageBox();
    const identity = device.identity;
    const lockButton = h("button", { type: "button", class: "secondary" },
      device.locked ? "Unlock" : "Lock");
    lockButton.addEventListener("click", () => run(lockButton, error, async () => {
      await lock(identity, !device.locked);
      await load();
    }));
    const revokeButton = h("button", { type: "button", class: "secondary" }, "Revoke");
    revokeButton.addEventListener("click", () => run(revokeButton, error, async () => {
      if (await revoke(identity)) await load();
    }));
    const removeButton = h("button", { type: "button", class: "danger" }, "Remove");
    removeButton.addEventListener("click", () => run(removeButton, error, async () => {
      if (await remove(identity)) await load();
    }));
    return h("tr", { dataset: { identity } },
      h("td", {}, h("a", { href: deviceHref(identity) }, identity)),
      h("td", { class: "status-cell" }, h("span", { class: `badge ${device.status}` }, device.status),
        device.devmode ? h("span", { class: "badge devmode" }, "devmode") : null),
      h("td", {}, device.online ? "online" : "offline"),
      h("td", {}, device.lastip || ""),
      h("td", {}, formatTime(device.lastseen)),
      h("td", {}, tagText(device.tags)),
      h("td", { class: "row-actions" }, lockButton, revokeButton, removeButton, error));
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = filters.elements;
    Object.assign(query, {
      identity: form.identity.value.trim(), status: form.status.value,
      tag_name: form.tag_name.value.trim(), tag_value: form.tag_value.value.trim(),
      sort: form.sort.value, order: form.order.value, limit: form.limit.value, offset: 0,
    });
    pushQuery();
    load();
  });
  prev.addEventListener("click", () => {
    query.offset = Math.max(0, query.offset - Number(query.limit));
    pushQuery();
    load();
  });
  next.addEventListener("click", () => {
    query.offset += Number(query.limit);
    pushQuery();
    load();
  });

  container.append(
    heading("Devices"),
    filters, filterError, summary, table,
    h("div", { class: "pager" }, prev, next),
    addForm(load),
    bulkForm(load));
  await load();
}

function addForm(reload) {
  const error = messageBox();
  const done = messageBox("status");
  const identity = h("input", { name: "identity", required: true, autocomplete: "off" });
  const password = h("input", { name: "password", type: "password", autocomplete: "new-password",
    minlength: 20 });
  const submit = h("button", { type: "submit" }, "Add device");
  const form = h("form", { class: "panel", "aria-labelledby": "add-device-title" },
    h("h2", { id: "add-device-title" }, "Add a device"),
    field("Identity", identity),
    field("Password (optional)", password,
      "At least 20 characters. Without one the identity is whitelisted: the device provisions "
      + "itself and gets its credentials then."),
    h("div", { class: "actions" }, submit), error, done);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done.clear();
    run(submit, error, async () => {
      const args = { identity: identity.value.trim() };
      if (password.value) args.auth = { type: "password", key: password.value };
      const added = await device2("addIdentity", args);
      form.reset();
      done.show(`Added ${added.identity} (${added.status}).`);
      await reload();
    });
  });
  return form;
}

function bulkForm(reload) {
  const error = messageBox();
  const done = messageBox("status");
  const failures = h("div");
  const file = h("input", { type: "file", accept: ".csv,text/csv,text/plain" });
  const text = h("textarea", { name: "csv", rows: 6, spellcheck: "false",
    placeholder: "ID, tag:site\nsensor-1, north\nsensor-2, south|east" });
  const submit = h("button", { type: "submit" }, "Import");
  file.addEventListener("change", async () => {
    if (file.files.length) text.value = await file.files[0].text();
  });
  const form = h("form", { class: "panel", "aria-labelledby": "bulk-title" },
    h("h2", { id: "bulk-title" }, "Bulk add (CSV)"),
    h("p", { class: "hint" }, "First line: the header ID, optionally SSL Client Certificate "
      + "and tag:<name> columns (several values in one cell separated by |). Valid rows are "
      + "added; each bad row is listed with its line."),
    field("CSV file", file),
    field("CSV text", text),
    h("div", { class: "actions" }, submit), error, done, failures);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done.clear();
    failures.replaceChildren();
    run(submit, error, async () => {
      if (!text.value.trim()) throw new Error("Choose a CSV file or paste CSV text first.");
      const result = await device2("addIdentities", { identities: text.value });
      const failed = result.failed || [];
      done.show(`Added ${result.added} ${result.added === 1 ? "identity" : "identities"}; `
        + `${failed.length} failed.`);
      if (failed.length) {
        failures.append(h("table", { class: "list failures" },
          h("caption", {}, "Rows not added"),
          h("thead", {}, h("tr", {},
            ["Line", "Identity", "Error", "Message"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, failed.map((f) => h("tr", {},
            h("td", {}, String(f.line)), h("td", {}, f.identity ?? ""),
            h("td", {}, f.error), h("td", {}, f.message || ""))))));
      }
      await reload();
    });
  });
  return form;
}

// -- one device ----------------------------------------------------------------------------

export async function renderDevice(container, route) {
  const identity = route.parts[1];
  const pageError = messageBox();
  const details = h("section", { "aria-labelledby": "details-title" });
  const state = h("section", { "aria-labelledby": "state-title" });
  const tags = h("section", { "aria-labelledby": "tags-title" });
  container.append(
    h("p", {}, h("a", { href: "#/devices" }, "← All devices")),
    heading(identity), pageError, details, state, tags);

  async function refresh() {
    let device;
    let settings;
    try {
      [device, settings] = await Promise.all([
        device2("getIdentity", { identity }), device2("getGatewaySettings")]);
    } catch (error) {
      pageError.show(error);
      return;
    }
    pageError.clear();
    renderDetails(details, device, refresh);
    renderState(state, device, settings.resources || {}, refresh);
    renderTags(tags, device, refresh);
  }
  await refresh();
}

function renderDetails(section, device, refresh) {
  const identity = device.identity;
  const error = messageBox();
  const lockButton = h("button", { type: "button", class: "secondary" },
    device.locked ? "Unlock" : "Lock");
  lockButton.addEventListener("click", () => run(lockButton, error, async () => {
    await lock(identity, !device.locked);
    await refresh();
  }));
  const revokeButton = h("button", { type: "button", class: "secondary" },
    "Revoke credentials");
  revokeButton.addEventListener("click", () => run(revokeButton, error, async () => {
    if (await revoke(identity)) await refresh();
  }));
  const removeButton = h("button", { type: "button", class: "danger" }, "Remove device");
  removeButton.addEventListener("click", () => run(removeButton, error, async () => {
    if (await remove(identity)) location.hash = "#/devices";
  }));
  const facts = [
    ["Status", device.status], ["Auth type", device.auth?.type],
    ["Online", device.online ? "yes" : "no"], ["Locked", device.locked ? "yes" : "no"],
    ["Reprovision", device.reprovision ? "yes" : "no"], ["Devmode", device.devmode ? "yes" : "no"],
    ["Last IP", device.lastip || "—"], ["Last seen", formatTime(device.lastseen) || "—"],
  ];
  section.replaceChildren(
    h("h2", { id: "details-title", class: "visually-hidden" }, "Details"),
    h("dl", { class: "facts", id: "device-facts" },
      facts.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { fact: k } }, v)])),
    h("div", { class: "actions" }, lockButton, revokeButton, removeButton), error);
}

function renderState(section, device, resources, refresh) {
  const identity = device.identity;
  const aliases = Object.keys(resources).sort();
  const rows = aliases.map((alias) => {
    const defn = resources[alias];
    const entry = device.state?.[alias] || {};
    const error = messageBox();
    let setCell = h("td", { class: "muted" }, "not settable");
    if (defn.settable) {
      const input = h("input", { name: "value", autocomplete: "off",
        "aria-label": `New value for ${alias}` });
      const button = h("button", { type: "submit" }, "Set");
      const form = h("form", { class: "inline" }, input, button, error);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        run(button, error, async () => {
          // The text goes as it is: the server parses it by the resource's format (§4.3).
          await device2("setIdentityState", { identity, [alias]: input.value });
          await refresh();
        });
      });
      setCell = h("td", {}, form);
    }
    const pending = defn.settable && defn.sync !== false && entry.set !== undefined
      && entry.set !== null && JSON.stringify(entry.set) !== JSON.stringify(entry.reported);
    return h("tr", { dataset: { alias } },
      h("th", { scope: "row" }, alias),
      h("td", {}, defn.format + (defn.unit ? ` (${defn.unit})` : "")),
      h("td", { class: "reported" }, showValue(entry.reported)),
      h("td", { class: "set" }, showValue(entry.set),
        pending ? h("span", { class: "badge pending" }, "pending") : null),
      h("td", {}, formatTime(entry.timestamp)),
      setCell);
  });
  section.replaceChildren(
    h("h2", { id: "state-title" }, "State"),
    aliases.length
      ? h("table", { class: "list", id: "device-state" },
        h("thead", {}, h("tr", {}, ["Resource", "Format", "Reported", "Set", "Updated",
          "Set a value"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No resources are defined (see Resources)."));
}

function renderTags(section, device, refresh) {
  const identity = device.identity;
  const listError = messageBox();
  const items = (device.tags || []).map((tag) => {
    const button = h("button", { type: "button", class: "secondary",
      "aria-label": `Remove tag ${tag.name}=${tag.value}` }, "Remove");
    button.addEventListener("click", () => run(button, listError, async () => {
      await device2("removeIdentityTag", { identity, tags: [tag] });
      await refresh();
    }));
    return h("li", { dataset: { tag: `${tag.name}=${tag.value}` } },
      h("span", { class: "tag" }, `${tag.name} = ${tag.value}`), " ", button);
  });
  const error = messageBox();
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const value = h("input", { name: "value", required: true, autocomplete: "off" });
  const submit = h("button", { type: "submit" }, "Add tag");
  const form = h("form", { class: "inline-fields" },
    field("Tag name", name), field("Tag value", value),
    h("div", { class: "actions" }, submit), error);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(submit, error, async () => {
      await device2("addIdentityTag", {
        identity, tags: [{ name: name.value.trim(), value: value.value.trim() }] });
      await refresh();
    });
  });
  section.replaceChildren(
    h("h2", { id: "tags-title" }, "Tags"),
    items.length ? h("ul", { class: "tags", id: "device-tags" }, items)
      : h("p", { class: "muted", id: "device-tags" }, "No tags."),
    listError, form);
}
