// The Content page (connector-spec §7): upload, list, download and delete content items.
// It uses the REST routes (GET …/content, PUT/GET/DELETE …/content/<id>: the body goes raw,
// streamed by the browser) when the server has them, else the Device2 operations
// contentList/contentUpload/contentDownload/contentDelete (the body as base64 in JSON).

import { ApiError, call, connectorPath, device2, send } from "./api.js";
import {
  field, formatBytes, formatTime, h, heading, messageBox, run,
} from "./ui.js";

const itemPath = (id) => connectorPath(`/content/${encodeURIComponent(id)}`);

function items(listed) {
  if (Array.isArray(listed)) return listed;
  return (listed && (listed.items || listed.content)) || [];
}

// Which API this server offers for content, found by listing once: {mode, items}.
async function listContent() {
  try {
    return { mode: "rest", items: items(await call("GET", connectorPath("/content"))) };
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 405)) {
      throw error;
    }
  }
  try {
    return { mode: "device2", items: items(await device2("contentList")) };
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new ApiError(404, "not_found", "this server offers no content API");
    }
    throw error;
  }
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function blobOf(base64, type) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: type || "application/octet-stream" });
}

// X-Content-Meta is taken as it is, and a browser sends only Latin-1 header values: meta with
// other characters goes in JSON through contentUpload (base64 in the body, so that path is for
// files the admin API's 16 MiB body limit takes).
const HEADER_SAFE = /^[\x20-\x7e]*$/;
const JSON_UPLOAD_MAX = 12 * 1024 * 1024;

async function upload(mode, id, file, type, meta) {
  if (mode === "rest" && HEADER_SAFE.test(meta)) {
    const headers = { "Content-Type": type };
    if (meta) headers["X-Content-Meta"] = meta;
    await send("PUT", itemPath(id), { body: file, headers });
    return;
  }
  if (file.size > JSON_UPLOAD_MAX) {
    throw new Error(mode === "rest"
      ? "Meta other than printable ASCII cannot go in the upload header, and a file over "
        + "12 MiB cannot go in JSON: use ASCII meta for this file."
      : "This server has no REST content upload; through contentUpload a file may have "
        + "12 MiB at most.");
  }
  await device2("contentUpload", { id, data: await base64Of(file), type, meta });
}

async function download(mode, id) {
  let blob;
  if (mode === "rest") {
    blob = await (await send("GET", itemPath(id))).blob();
  } else {
    const item = await device2("contentDownload", { id });
    blob = blobOf(item.data, item.type);
  }
  // The API needs the token, so a plain link cannot fetch it: save the fetched body instead.
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: id, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function remove(mode, id) {
  if (mode === "rest") await send("DELETE", itemPath(id));
  else await device2("contentDelete", { id });
}

export async function render(container) {
  const pageError = messageBox();
  const via = h("p", { class: "muted", id: "content-api" });
  const tbody = h("tbody");
  const table = h("table", { class: "list", id: "content-list" },
    h("caption", { class: "visually-hidden" }, "Content items"),
    h("thead", {}, h("tr", {}, ["Id", "Type", "Size", "Updated", "Meta", "Actions"]
      .map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  let mode = "rest";

  async function load() {
    let listed;
    try {
      listed = await listContent();
    } catch (error) {
      pageError.show(error);
      tbody.replaceChildren();
      return;
    }
    pageError.clear();
    mode = listed.mode;
    via.textContent = mode === "rest" ? "Using the REST content routes."
      : "Using the Device2 content operations.";
    const rows = [...listed.items].sort((a, b) => String(a.id).localeCompare(String(b.id)));
    tbody.replaceChildren(...rows.map((item) => {
      const error = messageBox();
      const get = h("button", { type: "button", class: "secondary",
        "aria-label": `Download ${item.id}` }, "Download");
      get.addEventListener("click", () => run(get, error, () => download(mode, item.id)));
      const del = h("button", { type: "button", class: "danger",
        "aria-label": `Delete ${item.id}` }, "Delete");
      del.addEventListener("click", () => run(del, error, async () => {
        if (!window.confirm(`Delete ${item.id}?`)) return;
        await remove(mode, item.id);
        await load();
      }));
      return h("tr", { dataset: { id: item.id } },
        h("th", { scope: "row" }, item.id),
        h("td", {}, item.type || ""),
        h("td", { title: `${item.length} bytes` }, formatBytes(item.length)),
        h("td", {}, formatTime(item.updated)),
        h("td", {}, item.meta || ""),
        h("td", { class: "row-actions" }, get, del, error));
    }));
    if (!rows.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "No content yet.")));
    }
  }

  const error = messageBox();
  const done = messageBox("status");
  const file = h("input", { type: "file", name: "file", required: true });
  const id = h("input", { name: "id", autocomplete: "off" });
  const type = h("input", { name: "type", autocomplete: "off" });
  const meta = h("input", { name: "meta", autocomplete: "off" });
  const submit = h("button", { type: "submit" }, "Upload");
  file.addEventListener("change", () => {
    const chosen = file.files[0];
    if (!chosen) return;
    if (!id.value) id.value = chosen.name;
    if (!type.value) type.value = chosen.type || "application/octet-stream";
  });
  const form = h("form", { class: "panel", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload"),
    field("File", file),
    field("Content id", id, "Defaults to the file name. An existing id is replaced."),
    field("Type", type, "MIME type; defaults to the file's type."),
    field("Meta", meta, "Free text devices see in the item's info."),
    h("div", { class: "actions" }, submit), error, done);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done.clear();
    run(submit, error, async () => {
      const chosen = file.files[0];
      if (!chosen) throw new Error("Choose a file first.");
      const name = id.value.trim() || chosen.name;
      done.show(`Uploading ${name}…`);
      try {
        await upload(mode, name, chosen,
          type.value.trim() || chosen.type || "application/octet-stream", meta.value);
      } catch (failure) {
        done.clear();
        throw failure;
      }
      form.reset();
      done.show(`Uploaded ${name} (${formatBytes(chosen.size)}).`);
      await load();
    });
  });

  container.append(heading("Content"), pageError, via, table, form);
  await load();
}
