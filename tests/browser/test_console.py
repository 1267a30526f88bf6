"""The web console (product.md §6) in headless Chromium against a running gateway: login,
devices (add, bulk CSV, filters, paging, lock/unlock, revoke, remove, device page with state
and tags), resources, content, live logs, settings; and the static file route itself.

Expectations use Playwright's auto-waiting ``expect`` (bounded by ``TIMEOUT_MS``), never
sleeps. What a page shows is checked against the service's own state where it matters."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TOKEN, Gateway, login
from tests.rawclient import RawClient, provision_mqtt

pytestmark = pytest.mark.timeout(60)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _row(page: Page, table: str, **data: str) -> Any:
    """The table row whose ``data-<key>`` attribute is the value."""
    (key, value), = data.items()
    return page.locator(f"#{table} tr[data-{key}={json.dumps(value)}]")


def _provision(gateway: Gateway, identity: str) -> None:
    provision_mqtt(*gateway.mqtt, identity)


# -- the static files ------------------------------------------------------------------------

def test_static_files_are_public_typed_and_not_cached(gateway: Gateway) -> None:
    status, headers, body = _get(gateway.base + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b'src="/console/app.js"' in body
    status, headers, body = _get(gateway.base + "/console/app.js")
    assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = _get(gateway.base + "/console/style.css")
    assert (status, headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    etag = headers["ETag"]
    status, _, body = _get(gateway.base + "/console/style.css", {"If-None-Match": etag})
    assert (status, body) == (304, b"")


@pytest.mark.parametrize("path", [
    "/console/nope.js", "/console/../app.py", "/console/..%2fconsole.py",
    "/console/%2e%2e%2f%2e%2e%2fpyproject.toml", "/console/", "/console/index.html/x",
    "/console/.hidden.js",
])
def test_static_files_no_traversal(gateway: Gateway, path: str) -> None:
    status, headers, body = _get(gateway.base + path)
    assert status in (401, 404), (path, status)  # outside /console/ the token is asked for
    assert json.loads(body)["status"] == status
    assert b"import" not in body and b"[project]" not in body


def test_api_still_needs_the_token(gateway: Gateway) -> None:
    status, _, body = _get(gateway.base + "/api/v1/connectors")
    assert (status, json.loads(body)["code"]) == (401, "unauthorized")


# -- login -----------------------------------------------------------------------------------

def test_login_bad_token_then_good(page: Page, gateway: Gateway) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("401 unauthorized")
    expect(page.get_by_role("navigation", name="Pages")).to_be_hidden()
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Devices", level=1)).to_be_visible()
    expect(page.get_by_label("Connector")).to_have_value(gateway.cid)
    # The token stays for the tab's session: a reload needs no new login.
    page.reload()
    expect(page.get_by_role("heading", name="Devices", level=1)).to_be_visible()
    # A token the server stops accepting sends the user back to the form, with a message.
    page.evaluate("sessionStorage.setItem('fleetgate.token', 'revoked')")
    page.get_by_role("link", name="Resources").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("refused the token")
    page.get_by_role("button", name="Log in").click()  # empty field: nothing happens
    login(page)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('fleetgate.token')") is None


# -- devices ---------------------------------------------------------------------------------

def test_add_device_and_errors_shown(page: Page, gateway: Gateway) -> None:
    login(page)
    expect(page.get_by_text("No devices match.")).to_be_visible()
    add = page.locator("form", has=page.get_by_role("heading", name="Add a device"))
    add.get_by_label("Identity").fill("sensor-1")
    add.get_by_role("button", name="Add device").click()
    expect(add.get_by_role("status")).to_have_text("Added sensor-1 (whitelisted).")
    expect(_row(page, "device-list", identity="sensor-1")).to_contain_text("whitelisted")
    # A second time: the API's 409 is shown next to the form.
    add.get_by_label("Identity").fill("sensor-1")
    add.get_by_role("button", name="Add device").click()
    expect(add.get_by_role("alert")).to_contain_text("409 conflict")
    # With a password: provisioned at once; a too short one is stopped in the form.
    add.get_by_label("Identity").fill("sensor-2")
    add.get_by_label("Password (optional)").fill("short")
    add.get_by_role("button", name="Add device").click()
    expect(add.locator("input[name=password]:invalid")).to_have_count(1)
    add.get_by_label("Password (optional)").fill("a-password-of-twenty-chars")
    add.get_by_role("button", name="Add device").click()
    expect(add.get_by_role("status")).to_have_text("Added sensor-2 (provisioned).")
    expect(add.get_by_role("alert")).to_be_hidden()
    expect(page.locator("#device-list tbody tr")).to_have_count(2)
    record = gateway.call(lambda: gateway.service.getIdentity(identity="sensor-2"))
    assert (record["status"], record["auth"]["type"]) == ("provisioned", "password")


def test_bulk_csv_with_a_bad_row(page: Page, gateway: Gateway) -> None:
    login(page)
    bulk = page.locator("form", has=page.get_by_role("heading", name="Bulk add (CSV)"))
    csv = "ID, tag:site\nbulk-1, north\nbulk-2, south|east\nbulk-1, west\n, nowhere\n"
    bulk.get_by_label("CSV file").set_input_files(
        files=[{"name": "devices.csv", "mimeType": "text/csv", "buffer": csv.encode()}])
    expect(bulk.get_by_label("CSV text")).to_have_value(csv)  # the file is shown before import
    bulk.get_by_role("button", name="Import").click()
    expect(bulk.get_by_role("status")).to_have_text("Added 2 identities; 2 failed.")
    failures = bulk.locator("table.failures tbody tr")
    expect(failures).to_have_count(2)
    expect(failures.nth(0)).to_contain_text("4")
    expect(failures.nth(0)).to_contain_text("bulk-1")
    expect(failures.nth(0)).to_contain_text("conflict")
    expect(failures.nth(1)).to_contain_text("5")
    expect(page.locator("#device-list tbody tr")).to_have_count(2)
    listed = gateway.call(lambda: gateway.service.listIdentities())
    assert [(d["identity"], d["tags"]) for d in listed["devices"]] == [
        ("bulk-1", [{"name": "site", "value": "north"}]),
        ("bulk-2", [{"name": "site", "value": "south"}, {"name": "site", "value": "east"}])]
    # Typed text works too; a header that is not ID is the API's 400, shown on the form.
    bulk.get_by_label("CSV text").fill("serial\nx\n")
    bulk.get_by_role("button", name="Import").click()
    expect(bulk.get_by_role("alert")).to_contain_text("the first CSV column must be ID")


def test_search_filter_sort_and_paging(page: Page, gateway: Gateway) -> None:
    rows = "".join(f"node-{i:02d}, {'a' if i % 2 else 'b'}\n" for i in range(30))
    result = gateway.call(lambda: gateway.service.addIdentities(
        identities="ID, tag:group\n" + rows + "other-1, a\n"))
    assert result == {"added": 31, "failed": []}
    gateway.call(lambda: gateway.service.updateIdentity(identity="node-03", locked=True))
    login(page)
    listed = page.locator("#device-list tbody tr")
    summary = page.locator("p.summary")
    expect(summary).to_have_text("Showing 1–25 of 31")
    expect(listed).to_have_count(25)
    page.get_by_role("button", name="Next page").click()
    expect(summary).to_have_text("Showing 26–31 of 31")
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    assert "offset=25" in page.url  # the page is in the URL: Back returns to it
    page.get_by_role("button", name="Previous page").click()
    expect(summary).to_have_text("Showing 1–25 of 31")

    filters = page.get_by_role("search", name="Filter devices")
    filters.get_by_label("Identity (glob)").fill("node-1*")
    filters.get_by_role("button", name="Apply").click()
    expect(summary).to_have_text("Showing 1–10 of 10")
    filters.get_by_label("Order").select_option("desc")
    filters.get_by_role("button", name="Apply").click()
    expect(listed.first).to_have_attribute("data-identity", "node-19")
    filters.get_by_label("Identity (glob)").fill("")
    filters.get_by_label("Status").select_option("locked")
    filters.get_by_role("button", name="Apply").click()
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("data-identity", "node-03")
    filters.get_by_role("button", name="Clear").click()
    expect(summary).to_have_text("Showing 1–25 of 31")
    filters.get_by_label("Tag name").fill("group")
    filters.get_by_label("Tag value").fill("a")
    filters.get_by_role("button", name="Apply").click()
    expect(summary).to_have_text("Showing 1–16 of 16")  # 15 odd nodes + other-1
    # A filter the API refuses shows its message by the filters.
    filters.get_by_label("Tag name").fill("")
    filters.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("tag_value needs tag_name")


def test_lock_unlock_revoke_remove(page: Page, gateway: Gateway) -> None:
    gateway.call(lambda: gateway.service.addIdentity(identity="dev-1"))
    gateway.call(lambda: gateway.service.addIdentity(
        identity="dev-2", auth={"type": "password", "key": "x" * 24}))
    login(page)
    row = _row(page, "device-list", identity="dev-1")
    row.get_by_role("button", name="Lock").click()
    expect(row.locator(".status-cell")).to_have_text("locked")
    assert gateway.call(lambda: gateway.service.getIdentity(identity="dev-1"))["locked"]
    row.get_by_role("button", name="Unlock").click()
    expect(row.locator(".status-cell")).to_have_text("whitelisted")
    row2 = _row(page, "device-list", identity="dev-2")
    expect(row2.locator(".status-cell")).to_have_text("provisioned")
    row2.get_by_role("button", name="Revoke").click()  # confirmed (the fixture accepts)
    expect(row2.locator(".status-cell")).to_have_text("reprovision")
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    assert [d["identity"] for d in gateway.call(
        lambda: gateway.service.listIdentities())["devices"]] == ["dev-2"]
    # An action failing shows its error in that row: dev-2 removed behind the page's back.
    gateway.call(lambda: gateway.service.removeIdentity(identity="dev-2"))
    row2.get_by_role("button", name="Lock").click()
    expect(row2.get_by_role("alert")).to_contain_text("404 not_found")


def test_device_page_state_set_and_tags(page: Page, gateway: Gateway) -> None:
    service = gateway.service
    gateway.call(lambda: service.addGatewayResource(alias="temp", format="number", unit="C"))
    gateway.call(lambda: service.addGatewayResource(alias="config_io", format="string",
                                                    settable=True))
    gateway.call(lambda: service.addGatewayResource(alias="threshold", format="number",
                                                    settable=True))
    gateway.call(lambda: service.addIdentity(identity="dev-9",
                                             tags=[{"name": "site", "value": "north"}]))
    gateway.call(lambda: service.write_values(identity="dev-9", entries=[(None, {"temp": "21.5"})]))
    login(page)
    page.get_by_role("link", name="dev-9", exact=True).click()
    expect(page.get_by_role("heading", name="dev-9", level=1)).to_be_visible()
    expect(page.locator('#device-facts dd[data-fact="Status"]')).to_have_text("whitelisted")
    temp = _row(page, "device-state", alias="temp")
    expect(temp.locator(".reported")).to_have_text("21.5")
    expect(temp).to_contain_text("not settable")

    config = _row(page, "device-state", alias="config_io")
    config.get_by_label("New value for config_io").fill('{"rate": 5}')
    config.get_by_role("button", name="Set").click()
    expect(config.locator(".set")).to_have_text('{"rate": 5}pending')
    state = gateway.call(lambda: service.getIdentityState(identity="dev-9"))
    assert state["config_io"]["set"] == '{"rate": 5}'
    threshold = _row(page, "device-state", alias="threshold")
    threshold.get_by_label("New value for threshold").fill("high")
    threshold.get_by_role("button", name="Set").click()
    expect(threshold.get_by_role("alert")).to_contain_text("400 invalid_value")
    threshold.get_by_label("New value for threshold").fill("7.5")
    threshold.get_by_role("button", name="Set").click()
    expect(threshold.locator(".set")).to_have_text("7.5pending")

    tags = page.locator("#device-tags")
    expect(tags).to_contain_text("site = north")
    page.get_by_label("Tag name").fill("floor")
    page.get_by_label("Tag value").fill("3")
    page.get_by_role("button", name="Add tag").click()
    expect(tags.locator("li")).to_have_count(2)
    page.get_by_role("button", name="Remove tag site=north").click()
    expect(tags.locator("li")).to_have_count(1)
    expect(tags).to_contain_text("floor = 3")
    assert gateway.call(lambda: service.getIdentityTag(identity="dev-9")) == [
        {"name": "floor", "value": "3"}]

    page.get_by_role("button", name="Lock").click()
    expect(page.locator('#device-facts dd[data-fact="Status"]')).to_have_text("locked")
    page.get_by_role("button", name="Remove device").click()
    expect(page.get_by_role("heading", name="Devices", level=1)).to_be_visible()
    expect(page.get_by_text("No devices match.")).to_be_visible()


def test_unknown_device_page_shows_the_error(page: Page) -> None:
    login(page)
    page.goto("/#/devices/nobody")
    expect(page.get_by_role("alert")).to_contain_text("404 not_found")


# -- resources -------------------------------------------------------------------------------

def test_resources_add_update_remove(page: Page, gateway: Gateway) -> None:
    login(page)
    page.get_by_role("link", name="Resources").click()
    expect(page.get_by_role("heading", name="Resources", level=1)).to_be_visible()
    expect(page.get_by_text("No resources yet.")).to_be_visible()
    form = page.locator("form", has=page.get_by_role("heading", name="Add a resource"))
    form.get_by_label("Alias").fill("mode")
    form.get_by_label("Format").select_option("string")
    form.get_by_label("Settable").check()
    form.get_by_label("Allowed values").fill("eco, boost")
    form.get_by_label("Initial value").fill("eco")
    form.get_by_role("button", name="Add resource").click()
    row = _row(page, "resource-list", alias="mode")
    expect(row).to_contain_text("eco, boost")
    # An initial value outside the allowed ones is the API's 400, shown by the form.
    form.get_by_label("Alias").fill("level")
    form.get_by_label("Format").select_option("number")
    form.get_by_label("Settable").check()
    form.get_by_label("Allowed values").fill("1-5")
    form.get_by_label("Initial value").fill("9")
    form.get_by_role("button", name="Add resource").click()
    expect(form.get_by_role("alert")).to_contain_text("400 invalid_value")
    form.get_by_label("Initial value").fill("")
    form.get_by_role("button", name="Add resource").click()
    expect(_row(page, "resource-list", alias="level")).to_contain_text("1-5")
    form.get_by_label("Alias").fill("mode")
    form.get_by_role("button", name="Add resource").click()
    expect(form.get_by_role("alert")).to_contain_text("409 conflict")

    row.get_by_role("button", name="Edit mode").click()
    edit = page.locator("form", has=page.get_by_role("heading", name="Update mode"))
    expect(edit.get_by_label("Alias")).to_have_value("mode")
    edit.get_by_label("Unit").fill("preset")
    edit.get_by_role("button", name="Update resource").click()
    expect(row).to_contain_text("preset")
    definition = gateway.call(lambda: gateway.service.getGatewayResource(alias="mode"))
    assert definition == {"alias": "mode", "format": "string", "unit": "preset",
                          "settable": True, "sync": True, "allowed": ["eco", "boost"],
                          "initial": "eco"}

    row.get_by_role("button", name="Remove mode").click()
    expect(row).to_have_count(0)
    resources = gateway.call(lambda: gateway.service.getGatewaySettings())["resources"]
    assert list(resources) == ["level"]


# -- content ---------------------------------------------------------------------------------

def test_content_upload_list_download_delete(page: Page, gateway: Gateway) -> None:
    login(page)
    page.get_by_role("link", name="Content").click()
    expect(page.get_by_text("No content yet.")).to_be_visible()
    expect(page.locator("#content-api")).to_have_text("Using the REST content routes.")
    body = bytes(range(256)) * 40  # binary, 10 KiB
    form = page.locator("form", has=page.get_by_role("heading", name="Upload"))
    form.get_by_label("File").set_input_files(
        files=[{"name": "fw-1.2.bin", "mimeType": "application/octet-stream", "buffer": body}])
    expect(form.get_by_label("Content id")).to_have_value("fw-1.2.bin")
    form.get_by_label("Meta").fill("build 42")
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("status")).to_have_text("Uploaded fw-1.2.bin (10.0 KiB).")
    row = _row(page, "content-list", id="fw-1.2.bin")
    expect(row).to_contain_text("application/octet-stream")
    expect(row).to_contain_text("build 42")
    info = gateway.call(lambda: gateway.service.contentInfo(id="fw-1.2.bin"))
    assert (info["length"], info["meta"]) == (len(body), "build 42")

    # Meta beyond ASCII cannot travel in the header: it goes through contentUpload.
    form.get_by_label("File").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    form.get_by_label("Meta").fill("für Gerät ✓")
    form.get_by_role("button", name="Upload").click()
    expect(_row(page, "content-list", id="notes.txt")).to_contain_text("für Gerät ✓")
    assert gateway.call(lambda: gateway.service.contentInfo(id="notes.txt"))["meta"] == \
        "für Gerät ✓"

    with page.expect_download() as download:
        row.get_by_role("button", name="Download fw-1.2.bin").click()
    assert download.value.suggested_filename == "fw-1.2.bin"
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == body

    # An id the server refuses ("/" inside) shows the API error by the form.
    form.get_by_label("File").set_input_files(
        files=[{"name": "x.txt", "mimeType": "text/plain", "buffer": b"x"}])
    form.get_by_label("Content id").fill("a/b")
    form.get_by_role("button", name="Upload").click()
    expect(form.get_by_role("alert")).to_contain_text(
        "400 bad_request: content id must be UTF-8 text without '/'")

    row.get_by_role("button", name="Delete fw-1.2.bin").click()
    expect(row).to_have_count(0)
    assert [i["id"] for i in gateway.call(lambda: gateway.service.contentList())] == [
        "notes.txt"]



def test_content_falls_back_to_device2_operations(page: Page, gateway: Gateway) -> None:
    """A server without the REST content routes (the list answers 404 here): the page uses
    contentList/contentUpload/contentDownload/contentDelete."""
    rest = re.compile(r".*/api/v1/connectors/[a-z0-9]+/content(/.*)?$")
    page.route(rest, lambda route: route.fulfill(
        status=404, content_type="application/json",
        body='{"status": 404, "code": "not_found", "message": "Not Found"}'))
    login(page)
    page.get_by_role("link", name="Content").click()
    expect(page.locator("#content-api")).to_have_text("Using the Device2 content operations.")
    form = page.locator("form", has=page.get_by_role("heading", name="Upload"))
    form.get_by_label("File").set_input_files(
        files=[{"name": "cfg.json", "mimeType": "application/json", "buffer": b'{"a": 1}'}])
    form.get_by_role("button", name="Upload").click()
    row = _row(page, "content-list", id="cfg.json")
    expect(row).to_contain_text("application/json")
    with page.expect_download() as download:
        row.get_by_role("button", name="Download cfg.json").click()
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == b'{"a": 1}'
    row.get_by_role("button", name="Delete cfg.json").click()
    expect(row).to_have_count(0)
    assert gateway.call(lambda: gateway.service.contentList()) == []


# -- logs ------------------------------------------------------------------------------------

def test_live_logs_filters_and_pause(page: Page, gateway: Gateway) -> None:
    login(page)
    page.get_by_role("link", name="Logs").click()
    status = page.locator("#log-status")
    expect(status).to_have_text("Live (stream)")
    entries = page.locator("#log-list tbody tr")
    _provision(gateway, "dev-live")
    expect(entries.filter(has_text="dev-live").filter(has_text="provision")).to_have_count(1)

    filters = page.get_by_role("search", name="Filter logs")
    filters.get_by_label("Identity").fill("dev-b")
    filters.get_by_role("button", name="Apply").click()
    expect(status).to_have_text("Live (stream)")
    expect(entries).to_have_count(0)  # dev-live's entry is filtered out of the history too
    _provision(gateway, "dev-a")
    _provision(gateway, "dev-b")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("dev-b")

    filters.get_by_role("button", name="Pause").click()
    gateway.call(lambda: gateway.service.removeIdentity(identity="dev-b"))
    expect(status).to_have_text("Paused: 1 new entry waiting.")
    expect(entries).to_have_count(1)
    filters.get_by_role("button", name="Resume").click()
    expect(entries).to_have_count(2)
    expect(entries.first).to_contain_text("deleted")  # newest first

    # The debug log: a CONNECT with a wrong token is refused with bad_credentials, logged once.
    filters.get_by_label("Identity").fill("")
    filters.get_by_label("Log").select_option("debug")
    filters.get_by_role("button", name="Apply").click()
    with RawClient(*gateway.mqtt) as client:
        client.connect(username="", password=b"x" * 40, expect_rc=4)
    expect(entries.filter(has_text="bad_credentials")).to_have_count(1)


def test_logs_fall_back_to_polling(page: Page, gateway: Gateway) -> None:
    """Without the stream route (a 404 here, as on a server without it) the page polls."""
    page.route(re.compile(r".*/logs/stream\?.*"), lambda route: route.fulfill(
        status=404, content_type="application/json",
        body='{"status": 404, "code": "not_found", "message": "Not Found"}'))
    login(page)
    page.get_by_role("link", name="Logs").click()
    expect(page.locator("#log-status")).to_have_text("Live (polling every 2 s)")
    _provision(gateway, "dev-poll")
    expect(page.locator("#log-list tbody tr").filter(has_text="dev-poll")).to_have_count(1)


# -- settings --------------------------------------------------------------------------------

def test_settings_edit_with_validation_error(page: Page, gateway: Gateway) -> None:
    login(page)
    page.get_by_role("link", name="Settings").click()
    text = page.get_by_label("Settings (JSON)")
    expect(text).not_to_have_value("")
    settings = json.loads(text.input_value())
    assert settings["fqdn"] == f"{gateway.cid}.m2.localhost"
    form = page.locator("form", has=text)

    text.fill("{not json")
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("alert")).to_contain_text("Invalid JSON")

    settings["protocol"]["name"] = "carrier-pigeon"
    text.fill(json.dumps(settings))
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("alert")).to_contain_text(
        "400 bad_request: protocol.name must be one of")
    assert gateway.call(lambda: gateway.service.getGatewaySettings())["protocol"]["name"] == \
        "onep"  # a refused save changes nothing

    settings["protocol"]["name"] = "mqtt"
    settings["description"] = "plant 7"
    text.fill(json.dumps(settings))
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_have_text("Saved.")
    expect(form.get_by_role("alert")).to_be_hidden()
    expect(text).to_have_value(re.compile(r'"name": "murano:v1/mqtt"'))  # reloaded, normalised
    stored = gateway.call(lambda: gateway.service.getGatewaySettings())
    assert (stored["protocol"]["name"], stored["description"]) == ("murano:v1/mqtt", "plant 7")
