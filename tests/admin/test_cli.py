"""The ``fleetgate`` management commands for real: ``broker.cli.main([...])`` in-process (stdout
and stderr captured) and ``python -m broker …`` subprocesses, against a gateway broker on a
uvloop thread with the admin site on its loop (real LMDB in ``tmp_path``, free ports), and one
``fleetgate serve`` subprocess for discovery from its configuration file."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.cli import bulk
from admin.cli.config import admin_url
from admin.cli.progress import Progress
from admin.site import start_site
from broker.cli import main
from broker.gateway.app import gateway_hooks
from broker.gateway.mqtt import GatewayHooks
from broker.mqtt.packets import Subscribe
from tests.conftest import RunningBroker, make_config, start_broker
from tests.rawclient import RawClient

TOKEN = "cli-test-token-0123456789abcdefghijklmnopqrstuvwxyz"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gateway:
    running: RunningBroker
    runner: Any
    url: str
    cid: str
    data: Path
    site_up: bool = True

    def stop_site(self) -> None:
        """Stop the admin site (its open streams end); the broker keeps running."""
        if self.site_up:
            self.site_up = False
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.running.loop).result(10)

    @property
    def service(self) -> Any:
        hooks = self.running.server.hooks
        assert isinstance(hooks, GatewayHooks)
        return hooks.service

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)


@contextmanager
def serve_gateway(tmp_path: Path, tweak: Callable[[Any], None] | None = None
                  ) -> Iterator[Gateway]:
    """A gateway broker (real composition: ``gateway_hooks``) and its admin site; ``tweak``
    may change the configuration first."""
    config = make_config(tmp_path, allow_anonymous=False)
    if tweak is not None:
        tweak(config)
    running, stop = start_broker(config, hooks_factory=gateway_hooks(config))
    hooks = running.server.hooks
    assert isinstance(hooks, GatewayHooks)
    runner, port = asyncio.run_coroutine_threadsafe(
        start_site(hooks.service, TOKEN, "127.0.0.1:0", running.server),
        running.loop).result(10)
    gateway = Gateway(running, runner, f"http://127.0.0.1:{port}", hooks.connector,
                      Path(config.server.data))
    try:
        yield gateway
    finally:
        gateway.stop_site()
        stop()


@pytest.fixture
def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    for name in ("FLEETGATE_URL", "FLEETGATE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # ./data must not be some other directory's
    with serve_gateway(tmp_path) as gateway:
        yield gateway


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(gw: Gateway, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("devices", "list", "--json")``: main() against the fixture's admin API."""

    def run(*argv: str, auth: bool = True) -> Result:
        args = list(argv) + (["--url", gw.url, "--token", TOKEN] if auth else [])
        capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def python_m_broker(*argv: str, env: dict[str, str] | None = None,
                    stdin: str | None = None, cwd: Path = ROOT) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "broker", *argv], cwd=cwd, input=stdin, capture_output=True,
        text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- connectors, devices ---------------------------------------------------------------------

def test_connectors_list_table_and_json(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("connectors", "list")
    assert r.code == 0, r.err
    header, row = r.out.splitlines()
    assert header.split() == ["ID", "NAME", "DEFAULT", "FQDN", "CREATED"]
    assert row.split()[0] == gw.cid and "yes" in row.split()
    r = cli("connectors", "list", "--json")
    assert [(c["id"], c["default"]) for c in r.json()] == [(gw.cid, True)]


def test_devices_add_show_list_and_filters(gw: Gateway, cli: Callable[..., Result]) -> None:
    assert cli("devices", "add", "sensor-1", "--tag", "site=north").code == 0
    r = cli("devices", "add", "sensor-2", "--device-token", "t" * 40, "--tag", "site=south")
    assert (r.code, r.out.strip()) == (0, "added sensor-2 (provisioned)")
    r = cli("devices", "add", "pump-1", "--locked", "--json")
    assert r.code == 0 and r.json()["status"] == "locked"

    listed = cli("devices", "list", "--json").json()
    assert [d["identity"] for d in listed["devices"]] == ["pump-1", "sensor-1", "sensor-2"]
    assert listed["total"] == 3 and listed["mayLoadMore"] is False

    def ids(*flags: str) -> list[str]:
        r = cli("devices", "list", "--json", *flags)
        assert r.code == 0, r.err
        return [d["identity"] for d in r.json()["devices"]]

    assert ids("--identity", "sensor-*") == ["sensor-1", "sensor-2"]
    assert ids("--status", "locked") == ["pump-1"]
    assert ids("--status", "provisioned") == ["sensor-2"]
    assert ids("--tag", "site=south") == ["sensor-2"]
    assert ids("--tag", "site") == ["sensor-1", "sensor-2"]
    assert ids("--online") == []
    assert ids("--offline") == ["pump-1", "sensor-1", "sensor-2"]
    assert ids("--sort", "identity", "--desc") == ["sensor-2", "sensor-1", "pump-1"]
    assert ids("--limit", "1", "--offset", "1") == ["sensor-1"]
    assert ids("--limit", "1", "--all") == ["pump-1", "sensor-1", "sensor-2"]

    r = cli("devices", "list", "--limit", "2")
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["IDENTITY", "STATUS", "ONLINE"]
    assert [line.split()[0] for line in lines[1:]] == ["pump-1", "sensor-1"]
    assert "1-2 of 3" in r.err and "--offset 2" in r.err  # the paging hint, on stderr

    r = cli("devices", "show", "sensor-2")
    assert r.code == 0
    assert "status:" in r.out and "provisioned" in r.out and "site=south" in r.out
    assert cli("devices", "show", "sensor-2", "--json").json()["auth"] == {"type": "token"}


def test_devices_lock_unlock_revoke_state_set_remove(gw: Gateway,
                                                     cli: Callable[..., Result]) -> None:
    assert cli("resources", "add", "config_io", "--settable").code == 0
    assert cli("resources", "add", "temp", "--format", "number").code == 0
    assert cli("devices", "add", "d1", "--cik", "k" * 40).code == 0

    assert cli("devices", "lock", "d1").out.strip() == "d1: locked"
    assert cli("devices", "unlock", "d1").out.strip() == "d1: provisioned"
    r = cli("devices", "revoke", "d1", "--json")
    assert r.code == 0 and r.json()["status"] == "reprovision"

    r = cli("devices", "set", "d1", 'config_io={"rate": 5}')
    assert (r.code, r.out.strip()) == (0, "d1: set config_io")
    state = cli("devices", "state", "d1", "--json").json()
    assert state["config_io"]["set"] == '{"rate": 5}'
    r = cli("devices", "state", "d1")
    assert r.out.splitlines()[0].split() == ["ALIAS", "REPORTED", "SET", "UPDATED"]
    assert any(line.startswith("config_io") and '{"rate": 5}' in line
               for line in r.out.splitlines())

    r = cli("devices", "set", "d1", "temp=3")  # not settable: the server's 400
    assert r.code == 1
    assert r.err.strip() == "fleetgate: 400 not_settable: resource 'temp' is not settable"

    assert cli("devices", "remove", "d1").out.strip() == "removed d1"
    r = cli("devices", "show", "d1")
    assert (r.code, r.out) == (1, "")
    assert r.err.strip() == "fleetgate: 404 not_found: identity 'd1' does not exist"


def test_devices_add_with_password_from_stdin(gw: Gateway, cli: Callable[..., Result],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct-horse-battery-staple\n"))
    r = cli("devices", "add", "pw1", "--password", "-", "--json")
    assert r.code == 0, r.err
    assert (r.json()["auth"], r.json()["status"]) == ({"type": "password"}, "provisioned")
    presented = gw.call(lambda: gw.service.password_hash_to_check(
        identity="pw1", password="correct-horse-battery-staple"))
    assert presented[1] is not None and presented[1].startswith("scrypt$")  # hashed, stored


# -- resources, tags, settings, apps ---------------------------------------------------------

def test_resources_add_update_list_remove(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("resources", "add", "level", "--format", "number", "--allowed", "1", "5-9",
            "--unit", "m")
    assert (r.code, r.out.strip()) == (0, "added resource level"), r.err
    assert cli("resources", "add", "on", "--format", "boolean", "--settable",
               "--allowed", "true", "false", "--initial", "false").code == 0
    listed = cli("resources", "list", "--json").json()
    assert listed["level"]["allowed"] == [1, "5-9"] and listed["level"]["unit"] == "m"
    assert (listed["on"]["allowed"], listed["on"]["initial"]) == ([True, False], False)

    assert cli("resources", "update", "level", "--allowed", "2.5").code == 0
    assert cli("resources", "update", "on", "--no-sync", "--no-initial").code == 0
    listed = cli("resources", "list", "--json").json()
    assert listed["level"]["allowed"] == [2.5]
    assert (listed["on"]["sync"], listed["on"]["initial"]) == (False, None)

    table = cli("resources", "list").out.splitlines()
    assert table[0].split() == ["ALIAS", "FORMAT", "SETTABLE", "SYNC", "UNIT", "ALLOWED",
                                "INITIAL"]
    assert [line.split()[0] for line in table[1:]] == ["level", "on"]

    r = cli("resources", "add", "level", "--format", "string")
    assert (r.code, r.err.split()[:3]) == (1, ["fleetgate:", "409", "conflict:"])
    r = cli("resources", "add", "x", "--format", "boolean", "--allowed", "maybe")
    assert r.code == 2 and "not a boolean" in r.err
    assert cli("resources", "update", "level").code == 2  # nothing to change
    assert cli("resources", "remove", "level").out.strip() == "removed resource level"
    assert sorted(cli("resources", "list", "--json").json()) == ["on"]
    assert cli("resources", "remove", "level").code == 1


def test_tags_add_list_remove_names_values(gw: Gateway, cli: Callable[..., Result]) -> None:
    for identity in ("a", "b"):
        assert cli("devices", "add", identity).code == 0
    r = cli("tags", "add", "a", "site=north", "floor=1", "floor=2")
    assert r.code == 0, r.err
    assert [line.split() for line in r.out.splitlines()] == [
        ["NAME", "VALUE"], ["site", "north"], ["floor", "1"], ["floor", "2"]]
    assert cli("tags", "add", "b", "site=north").code == 0
    r = cli("tags", "add", "a", "floor=3", "--replace", "--json")
    assert r.json() == [{"name": "site", "value": "north"}, {"name": "floor", "value": "3"}]
    assert cli("tags", "list", "a", "--name", "site", "--json").json() == [
        {"name": "site", "value": "north"}]
    assert cli("tags", "names").out.split() == ["floor", "site"]
    assert cli("tags", "values", "site", "--json").json() == [{"value": "north", "count": 2}]
    assert cli("tags", "remove", "a", "floor", "--json").json() == [
        {"name": "site", "value": "north"}]
    assert cli("tags", "remove", "b", "site=south", "--json").json() == [
        {"name": "site", "value": "north"}]  # no such value: nothing removed
    assert cli("tags", "add", "a", "novalue").code == 2
    assert cli("tags", "list", "nobody").code == 1


def test_settings_show_and_set(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("settings", "show")
    assert r.code == 0
    assert "provisioning.enabled = true" in r.out.splitlines()
    assert f'fqdn = "{gw.cid}.m2.localhost"' in r.out.splitlines()
    r = cli("settings", "set", "provisioning.enabled=false", "name=Plant 7",
            'events.types=["connect","disconnect"]')
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["provisioning.enabled = false", 'name = "Plant 7"',
                                  'events.types = ["connect", "disconnect"]']
    settings = cli("settings", "show", "--json").json()
    assert settings["provisioning"]["enabled"] is False and settings["name"] == "Plant 7"
    assert settings["provisioning"]["auth_type"] == "token"  # a deep merge kept the rest
    r = cli("settings", "set", "provisioning.auth_type=carrier-pigeon")
    assert r.code == 1 and r.err.startswith("fleetgate: 400 bad_request: ")
    assert cli("settings", "set", "name=x", "name.y=1").code == 2
    assert cli("settings", "set", "name").code == 2
    assert cli("settings", "show", "--json").json()["name"] == "Plant 7"  # nothing changed


def test_apps_create_list_remove(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("apps", "create", "--name", "dashboard")
    assert r.code == 0 and "not shown again" in r.err
    fields = dict(line.split(":", 1) for line in r.out.splitlines())
    key, secret = fields["key"].strip(), fields["secret"].strip()
    assert key and secret
    assert gw.call(lambda: gw.service.verify_app_key(key, secret)) == gw.cid
    listed = cli("apps", "list", "--json").json()
    assert [(a["key"], a["name"]) for a in listed] == [(key, "dashboard")]
    assert cli("apps", "list").out.splitlines()[1].split()[:2] == [key, "dashboard"]
    assert cli("apps", "remove", key).code == 0
    assert cli("apps", "list", "--json").json() == []
    r = cli("apps", "remove", key)
    assert r.code == 1 and "404 not_found" in r.err


def test_connectors_create_show_remove(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("connectors", "create", "--id", "second1", "--name", "Second", "--json")
    assert r.code == 0, r.err
    assert (r.json()["id"], r.json()["default"]) == ("second1", False)
    assert cli("devices", "add", "only-here", "--connector", "second1").code == 0
    assert [d["identity"] for d in cli("devices", "list", "--connector", "second1",
                                       "--json").json()["devices"]] == ["only-here"]
    assert cli("devices", "list", "--json").json()["devices"] == []  # default connector
    r = cli("connectors", "show", "second1")
    assert 'name = "Second"' in r.out.splitlines()
    r = cli("connectors", "show", "--json")  # no CID: the default connector
    assert r.json()["fqdn"] == f"{gw.cid}.m2.localhost"
    r = cli("connectors", "remove", "second1")
    assert r.code == 2 and "--yes" in r.err
    assert cli("connectors", "remove", "second1", "--yes").code == 0
    assert [c["id"] for c in cli("connectors", "list", "--json").json()] == [gw.cid]
    r = cli("devices", "list", "--connector", "second1")
    assert r.code == 1 and "404 not_found" in r.err


# -- bulk import -----------------------------------------------------------------------------

def test_import_csv_in_batches_with_progress(gw: Gateway, cli: Callable[..., Result],
                                             tmp_path: Path) -> None:
    """1000 rows in 4 requests: a quoted tag spanning two lines, a bad identity, a repeat in
    the same batch and one in a later batch; failures carry the file's line numbers."""
    lines = ["ID,tag:site"]
    bad_lines: dict[int, str] = {}
    for i in range(1000):
        if i == 10:
            lines.append('dev-10,"north\nwing"')  # two lines of the file
        elif i == 20:
            lines.append("bad/identity,x")
            bad_lines[len(lines) + 1] = "bad/identity"  # +1: the two-line record above
        elif i == 30:
            lines.append("dev-5,x")
            bad_lines[len(lines) + 1] = "dev-5"
        elif i == 700:
            lines.append("dev-6,x")  # dev-6 went in with the first batch
            bad_lines[len(lines) + 1] = "dev-6"
        else:
            lines.append(f"dev-{i},site{i % 3}")
    path = tmp_path / "fleet.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    r = cli("devices", "import", str(path), "--batch", "300", "--progress", "--json")
    assert r.code == 1  # some rows failed
    result = r.json()
    assert result["added"] == 997
    assert {f["line"]: f["identity"] for f in result["failed"]} == bad_lines
    assert {f["error"] for f in result["failed"]} == {"invalid_identity", "conflict"}
    bars = [line for line in r.err.splitlines() if line.startswith("import fleet.csv")]
    assert [bar.split("]")[1].split()[0] for bar in bars] == ["0%", "30%", "60%", "90%",
                                                              "100%"]
    assert bars[-1].endswith("1000/1000 rows")
    assert r.err.splitlines()[-1] == "fleetgate: 3 rows failed"

    total = gw.call(lambda: gw.service.countIdentities())["total"]
    assert total == 997
    record = gw.call(lambda: gw.service.getIdentity(identity="dev-10"))
    assert record["tags"] == [{"name": "site", "value": "north\nwing"}]

    r = cli("devices", "import", str(path))  # again: every row exists now, no progress
    assert r.code == 1 and not any(line.startswith("import") for line in r.err.splitlines())
    first = r.out.splitlines()
    assert first[0] == "added 0 identities, 1000 failed"
    assert first[1].split() == ["LINE", "IDENTITY", "ERROR", "MESSAGE"]


def test_import_refusals(gw: Gateway, cli: Callable[..., Result], tmp_path: Path) -> None:
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("serial\nx\n", encoding="utf-8")
    r = cli("devices", "import", str(bad_header))
    assert r.code == 1
    assert r.err.strip() == "fleetgate: 400 bad_request: the first CSV column must be ID"
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert cli("devices", "import", str(empty)).code == 1
    r = cli("devices", "import", str(tmp_path / "missing.csv"))
    assert r.code == 2 and "cannot read" in r.err
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"ID\ncaf\xe9\n")
    r = cli("devices", "import", str(latin))
    assert r.code == 2 and "not UTF-8" in r.err
    ok = tmp_path / "ok.csv"
    ok.write_text("ID\nfine-1\n\nfine-2\n", encoding="utf-8")
    r = cli("devices", "import", str(ok))
    assert (r.code, r.out.strip()) == (0, "added 2 identities, 0 failed")
    sub = python_m_broker("devices", "import", "-", "--url", gw.url, "--token", TOKEN,
                          stdin='ID,tag:note\r\nfrom-stdin,"two\r\nlines"\r\n')
    assert (sub.code, sub.out.strip()) == (0, "added 1 identity, 0 failed"), sub.err
    record = gw.call(lambda: gw.service.getIdentity(identity="from-stdin"))
    assert record["tags"] == [{"name": "note", "value": "two\r\nlines"}]  # bytes kept


def test_bulk_split_keeps_records_whole_and_maps_lines() -> None:
    text = 'ID,tag:a\r\nx1,"multi\r\nline"\r\n\r\nx2,b\r\nx3,c\r\n'
    batches = bulk.split(text, 2)
    assert [b.rows for b in batches] == [2, 1]
    assert "".join(b.text[len('ID,tag:a\r\n'):] for b in batches) == text[len('ID,tag:a\r\n'):]
    for batch in batches:
        rows = list(csv.reader(io.StringIO(batch.text, newline="")))
        assert rows[0] == ["ID", "tag:a"]
    # x3 is on line 2 of the second batch and on line 6 of the file
    assert batches[1].file_line(2) == 6 and batches[0].file_line(2) == 2
    assert batches[0].file_line(1) == 1  # the header is the header
    assert [b.rows for b in bulk.split('ID\n"unterminated\nx\n', 5)] == [1]


# -- logs ------------------------------------------------------------------------------------

def test_logs_event_and_debug(gw: Gateway, cli: Callable[..., Result]) -> None:
    for identity in ("a", "b"):
        cli("devices", "add", identity)
        cli("devices", "remove", identity)
    r = cli("logs", "--json")
    entries = [json.loads(line) for line in r.out.splitlines()]
    assert [(e["type"], e["identity"]) for e in entries] == [("deleted", "a"), ("deleted", "b")]
    assert [json.loads(x)["identity"] for x in cli("logs", "--json", "--limit", "1")
            .out.splitlines()] == ["b"]
    assert [json.loads(x)["identity"] for x in cli("logs", "--json", "--identity", "a")
            .out.splitlines()] == ["a"]
    human = cli("logs").out.splitlines()
    assert len(human) == 2 and human[0].split()[1:3] == ["deleted", "a"]

    with RawClient(gw.running.host, gw.running.port) as c:  # not CONNECT first: a debug entry
        c.send(Subscribe(1, [("a", 0)]))
        c.expect_closed()
    r = cli("logs", "--debug", "--ip", "127.0.0.1", "--json")
    assert [json.loads(line)["type"] for line in r.out.splitlines()] == ["protocol_error"]
    assert cli("logs", "--debug", "--ip", "10.9.9.9").out == ""
    assert cli("logs", "--limit", "0").code == 2


def test_logs_follow_until_ctrl_c(gw: Gateway, cli: Callable[..., Result]) -> None:
    """``logs --follow`` over the SSE route in a subprocess: the backlog (--limit), then live
    entries as they happen; SIGINT ends it with exit 0."""
    cli("devices", "add", "early")
    cli("devices", "remove", "early")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "logs", "--follow", "--json", "--limit", "1",
         "--url", gw.url, "--token", TOKEN],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # blocks until the backlog arrives
        assert (first["type"], first["identity"]) == ("deleted", "early")
        cli("devices", "add", "live")
        cli("devices", "remove", "live")
        second = json.loads(proc.stdout.readline())
        assert (second["type"], second["identity"]) == ("deleted", "live")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_logs_follow_ends_with_3_when_the_server_goes(gw: Gateway,
                                                     cli: Callable[..., Result]) -> None:
    """The admin site stops while a follow is open: one line on stderr, exit 3."""
    cli("devices", "add", "early")
    cli("devices", "remove", "early")
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "logs", "-f", "--limit", "1", "--url", gw.url,
         "--token", TOKEN],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().split()[1:3] == ["deleted", "early"]  # stream open
        gw.stop_site()
        assert proc.wait(20) == 3
        err = proc.stderr.read().splitlines()
        assert len(err) == 1 and err[0].startswith("fleetgate: "), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- content ---------------------------------------------------------------------------------

def test_content_upload_list_download_delete(gw: Gateway, cli: Callable[..., Result],
                                             tmp_path: Path) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "firmware-1.2.bin"
    source.write_bytes(body)
    r = cli("content", "upload", str(source), "--meta", "v1.2 stable", "--progress")
    assert r.code == 0, r.err
    assert r.out.strip() == "uploaded firmware-1.2.bin (3.0 MiB, application/octet-stream)"
    bars = [line for line in r.err.splitlines() if line.startswith("upload firmware-1.2.bin")]
    assert len(bars) > 10 and "100%" in bars[-1]

    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    assert cli("content", "upload", str(notes), "--id", "readme").code == 0

    by_id = {item["id"]: item for item in cli("content", "list", "--json").json()}
    assert by_id["firmware-1.2.bin"]["length"] == len(body)
    assert by_id["firmware-1.2.bin"]["meta"] == "v1.2 stable"
    assert by_id["readme"]["type"] == "text/plain"
    table = cli("content", "list").out.splitlines()
    assert table[0].split() == ["ID", "TYPE", "SIZE", "UPDATED", "META"]

    target = tmp_path / "out" / "fw.bin"
    target.parent.mkdir()
    r = cli("content", "download", "firmware-1.2.bin", "-o", str(target), "--progress")
    assert r.code == 0, r.err
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(body).digest()
    assert not Path(str(target) + ".part").exists()
    assert "100%" in r.err.splitlines()[-1]

    sub = python_m_broker("content", "download", "readme", "-o", "-", "--url", gw.url,
                          "--token", TOKEN)
    assert (sub.code, sub.out) == (0, "hello")

    assert cli("content", "delete", "readme").out.strip() == "deleted readme"
    gone = tmp_path / "gone"
    r = cli("content", "download", "readme", "-o", str(gone))
    assert r.code == 1 and "404" in r.err
    assert not gone.exists() and not Path(str(gone) + ".part").exists()
    r = cli("content", "upload", str(notes), "--meta", "naïve")
    assert r.code == 2 and "printable ASCII" in r.err


def test_content_upload_over_the_limit_is_an_api_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """The server refuses an oversize upload (413) before reading it: the command reports
    the server's answer (exit 1), not a broken connection."""
    def small(config: Any) -> None:
        config.content.max_size = 64 * 1024

    with serve_gateway(tmp_path, small) as gateway:
        big = tmp_path / "big.bin"
        big.write_bytes(b"x" * (4 * 1024 * 1024))
        code = main(["content", "upload", str(big), "--url", gateway.url, "--token", TOKEN])
        err = capsys.readouterr().err
        assert code == 1, err
        assert err.startswith("fleetgate: 413 ") and len(err.splitlines()) == 1
        assert gateway.call(lambda: gateway.service.contentList()) == []  # nothing stored


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Progress("upload fw", None, stream=screen)
    assert bar.tty
    bar.start(4 * 1024 * 1024)
    for _ in range(4):
        bar(1024 * 1024)
    bar.close()
    frames = screen.getvalue().split("\r\x1b[K")
    assert frames[1].startswith("upload fw [......") and " 0% " in frames[1]
    assert frames[-1] == "upload fw [" + "#" * 30 + "] 100% 4.0 MiB / 4.0 MiB\n"
    quiet = Terminal()
    off = Progress("x", 10, enabled=False, stream=quiet)
    off(5)
    off.close()
    assert quiet.getvalue() == ""


# -- errors and discovery --------------------------------------------------------------------

def test_error_exit_codes(gw: Gateway, cli: Callable[..., Result]) -> None:
    r = cli("devices", "list", "--url", gw.url, "--token", "wrong", auth=False)
    assert r.code == 1
    assert r.err.strip() == "fleetgate: 401 unauthorized: a valid bearer token is required"
    r = cli("devices", "list", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x",
            auth=False)
    assert r.code == 3
    assert r.err.startswith("fleetgate: cannot reach the admin API at http://127.0.0.1:")
    assert len(r.err.splitlines()) == 1
    assert cli("devices").code == 2  # no action
    assert cli("devices", "set", "x", "no-equals-sign").code == 2
    assert cli("devices", "list", "--status", "asleep").code == 2
    r = cli("devices", "list", "--sort", "colour")
    assert r.code == 1 and "400 bad_request: sort must be one of" in r.err
    assert cli("devices", "list", "--url", "ftp://x", "--token", "t", auth=False).code == 2
    r = cli("devices", "list", "--url", gw.url, "--token", "two words", auth=False)
    assert r.code == 2 and "printable ASCII" in r.err
    r = cli("devices", "list", "--connector", "nosuch")
    assert (r.code, r.err.split()[:3]) == (1, ["fleetgate:", "404", "not_found:"])


def test_discovery_env_and_data_dir(gw: Gateway, cli: Callable[..., Result],
                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r = cli("connectors", "list", auth=False)  # nothing given, no ./data/admin.token
    assert r.code == 2 and "no admin token" in r.err
    monkeypatch.setenv("FLEETGATE_URL", gw.url)
    monkeypatch.setenv("FLEETGATE_TOKEN", TOKEN)
    assert cli("connectors", "list", "--json", auth=False).json()[0]["id"] == gw.cid
    monkeypatch.setenv("FLEETGATE_TOKEN", "wrong")
    assert cli("connectors", "list", "--token", TOKEN, auth=False).code == 0  # flag wins
    monkeypatch.delenv("FLEETGATE_TOKEN")
    data = tmp_path / "elsewhere"
    data.mkdir()
    (data / "admin.token").write_text(TOKEN + "\n", encoding="utf-8")
    assert cli("connectors", "list", "--data", str(data), auth=False).code == 0
    # the group-level position of an option works too
    assert cli("connectors", "--data", str(data), "list", "--json", auth=False).code == 0
    # the subprocess sees the environment the same way
    sub = python_m_broker("devices", "list", "--json",
                          env={"FLEETGATE_URL": gw.url, "FLEETGATE_TOKEN": TOKEN})
    assert sub.code == 0, sub.err
    assert json.loads(sub.out) == {"devices": [], "total": 0, "mayLoadMore": False}


def test_serve_then_commands_found_from_its_config(tmp_path: Path) -> None:
    """``fleetgate serve --config F`` in a subprocess; the commands given only ``--config F``
    find its admin URL (listeners.admin) and token (<server.data>/admin.token)."""
    admin_port, mqtt_port = free_port(), free_port()
    data = tmp_path / "state"
    config = tmp_path / "fleetgate.toml"
    config.write_text(f'[server]\ndata = "{data}"\n\n[listeners]\n'
                      f'admin = "127.0.0.1:{admin_port}"\nmqtt = "127.0.0.1:{mqtt_port}"\n',
                      encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--config", str(config), "--mqtt",
         f"127.0.0.1:{mqtt_port}", "--mqtt-tls", "", "--https", ""], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    env = {"FLEETGATE_URL": "", "FLEETGATE_TOKEN": ""}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{admin_port}/api/v1/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.05)
        r = python_m_broker("devices", "add", "from-config", "--config", str(config), env=env,
                            cwd=tmp_path)
        assert (r.code, r.out.strip()) == (0, "added from-config (whitelisted)"), r.err
        r = python_m_broker("devices", "list", "--config", str(config), "--json", env=env,
                            cwd=tmp_path)
        assert [d["identity"] for d in json.loads(r.out)["devices"]] == ["from-config"]
        r = python_m_broker("devices", "show", "nobody", "--config", str(config), env=env,
                            cwd=tmp_path)
        assert r.code == 1 and r.err == (
            "fleetgate: 404 not_found: identity 'nobody' does not exist\n")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()


@pytest.mark.parametrize(("address", "url"), [
    ("0.0.0.0:8081", "http://127.0.0.1:8081"), (":8081", "http://127.0.0.1:8081"),
    ("[::]:9000", "http://[::1]:9000"), ("127.0.0.2:1", "http://127.0.0.2:1"),
    ("[::1]:8081", "http://[::1]:8081")])
def test_a_wildcard_admin_bind_is_reached_on_loopback(address: str, url: str) -> None:
    assert admin_url(address) == url
