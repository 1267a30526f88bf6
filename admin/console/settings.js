// The Settings page: the connector's settings object (connector-spec §2) as JSON, edited and
// saved with updateGatewaySettings. The server deep-merges the object into the stored
// settings and validates the whole result, so a refused save changes nothing; to remove a
// key inside an object (a resource, say) set it to null.

import { device2 } from "./api.js";
import { h, heading, messageBox, run } from "./ui.js";

export async function render(container) {
  const error = messageBox();
  const done = messageBox("status");
  const text = h("textarea", { id: "settings-json", rows: 28, spellcheck: "false",
    class: "code", "aria-describedby": "settings-hint" });
  const save = h("button", { type: "submit" }, "Save");
  const reload = h("button", { type: "button", class: "secondary" }, "Reload");
  const form = h("form", { class: "panel" },
    h("label", { for: "settings-json" }, "Settings (JSON)"),
    h("p", { id: "settings-hint", class: "hint" },
      "Saving merges this object into the stored settings (objects key by key); null inside "
      + "an object removes that key. fqdn is derived from the connector id and cannot change."),
    text, h("div", { class: "actions" }, save, reload), error, done);

  async function load() {
    const settings = await device2("getGatewaySettings");
    text.value = JSON.stringify(settings, null, 2);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    done.clear();
    run(save, error, async () => {
      let patch;
      try {
        patch = JSON.parse(text.value);
      } catch (failure) {
        throw new Error(`Invalid JSON: ${failure.message}`);
      }
      if (!patch || typeof patch !== "object" || Array.isArray(patch)) {
        throw new Error("The settings must be a JSON object.");
      }
      await device2("updateGatewaySettings", patch);
      await load();
      done.show("Saved.");
    });
  });
  reload.addEventListener("click", () => {
    done.clear();
    run(reload, error, load);
  });

  container.append(heading("Settings"), form);
  await run(null, error, load);
}
