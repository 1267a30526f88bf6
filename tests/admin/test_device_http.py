"""The device HTTP API (connector-spec §3.3, §6) over real HTTP: a gateway broker on a uvloop
thread with real LMDB, the device site on its loop, raw ``http.client`` requests; and
``python -m broker serve --dev --http`` end to end."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.admin.devicesite import (
    FORM,
    DeviceSite,
    Reply,
    define,
    running_device_site,
)
from tests.rawclient import RawClient

ROOT = Path(__file__).resolve().parents[2]
WRITE = "/onep:v1/stack/alias"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeviceSite]:
    with running_device_site(tmp_path) as s:
        define(s, "temp", format="number")
        define(s, "msg", format="string")
        define(s, "cmd", format="string", settable=True)
        yield s


def token_for(site: DeviceSite, identity: str = "dev1") -> str:
    return site.activate(identity)


def error(reply: Reply) -> tuple[int, str]:
    assert reply.headers["content-type"] == "text/plain; charset=utf-8", reply.headers
    return reply.status, reply.text


def state(site: DeviceSite, identity: str = "dev1") -> dict[str, Any]:
    return site.op("getIdentityState", identity=identity)


# -- timestamp, routes ---------------------------------------------------------------------

def test_timestamp_needs_no_auth(site: DeviceSite) -> None:
    reply = site.device("GET", "/timestamp")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert abs(int(reply.text) - time.time()) < 5


def test_unknown_route_and_method(site: DeviceSite) -> None:
    assert error(site.device("GET", "/nothing")) == (404, "not_found")
    assert error(site.device("DELETE", WRITE)) == (405, "method_not_allowed")


# -- provisioning (§3.3) -------------------------------------------------------------------

def test_activate_token_mode(site: DeviceSite) -> None:
    reply = site.device("POST", "/provision/activate", "id=dev1")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(reply.text) == 40 and reply.text.isalnum()
    assert site.op("getIdentity", identity="dev1")["status"] == "provisioned"
    assert [e["type"] for _, e in site.events] == ["provisioned"]


def test_activate_again_rotation_and_refusals(site: DeviceSite) -> None:
    first = token_for(site)
    assert error(site.device("POST", "/provision/activate", "id=dev1")) == (
        409, "already_provisioned")
    assert error(site.device("POST", "/provision/activate", "id=dev1", token="x" * 40)) == (
        400, "not_authenticated")
    rotated = site.device("POST", "/provision/activate", "id=dev1", token=first)
    assert rotated.status == 200 and rotated.text != first
    assert error(site.device("GET", f"{WRITE}?temp", token=first)) == (401, "bad_credentials")
    assert site.device("GET", f"{WRITE}?temp", token=rotated.text).status == 204
    reasons = [e["type"] for e in site.op("getLogs", type="debug")]
    assert "not_authenticated" in reasons


def test_activate_legacy_body(site: DeviceSite) -> None:
    body = f"vendor={site.cid}&model={site.cid}&sn=legacy1"
    assert site.device("POST", "/provision/activate", body).status == 200
    assert error(site.device("POST", "/provision/activate", "vendor=other&sn=x")) == (
        404, "not_found")
    assert error(site.device("POST", "/provision/activate", "id=a&sn=b")) == (
        400, "invalid_identity")
    assert error(site.device("POST", "/provision/activate", "id=a&id=b")) == (400, "bad_form")


@pytest.mark.parametrize("body", ["", "other=1", "id="])
def test_activate_without_identity(site: DeviceSite, body: str) -> None:
    assert error(site.device("POST", "/provision/activate", body)) == (400, "invalid_identity")


def test_activate_refusals_by_settings(site: DeviceSite) -> None:
    site.op("updateGatewaySettings", identity_format={"type": "base10"})
    assert error(site.device("POST", "/provision/activate", "id=abc")) == (
        400, "invalid_identity")
    site.op("updateGatewaySettings", provisioning={"presenter_identity": False})
    assert error(site.device("POST", "/provision/activate", "id=123")) == (
        404, "presenter_identity_disabled")
    site.op("addIdentity", identity="456")
    site.op("updateGatewaySettings", provisioning={"ip_whitelisting": {
        "enabled": True, "allowed": ["10.0.0.0/8"]}})
    assert error(site.device("POST", "/provision/activate", "id=456")) == (
        403, "ip_not_allowed")
    site.op("updateGatewaySettings", provisioning={"ip_whitelisting": {"enabled": False},
                                                   "enabled": False})
    assert error(site.device("POST", "/provision/activate", "id=456")) == (
        409, "provision_disabled")


def test_activate_locked_and_expired(site: DeviceSite) -> None:
    site.op("addIdentity", identity="locked1", locked=True)
    assert error(site.device("POST", "/provision/activate", "id=locked1")) == (403, "locked")
    site.op("addIdentity", identity="late1", auth={"expire": 1})
    assert error(site.device("POST", "/provision/activate", "id=late1")) == (403, "expired")
    assert [e["type"] for _, e in site.events] == ["expired"]


def test_password_mode(site: DeviceSite) -> None:
    site.op("updateGatewaySettings", provisioning={"auth_type": "password"})
    password = "a-password-of-twenty+"
    assert error(site.device("POST", "/provision/activate", "id=pw1&password=short")) == (
        400, "bad_credentials")
    reply = site.device("POST", "/provision/activate", f"id=pw1&password={quote(password)}")
    assert (reply.status, reply.body) == (204, b"")
    basic = base64.b64encode(f"pw1:{password}".encode()).decode()
    assert site.device("POST", WRITE, "temp=3", Authorization=f"Basic {basic}").status == 204
    assert state(site, "pw1")["temp"]["reported"] == 3
    wrong = base64.b64encode(b"pw1:not-the-password-at-all").decode()
    assert error(site.device("GET", f"{WRITE}?temp", Authorization=f"Basic {wrong}")) == (
        401, "bad_credentials")
    unknown = base64.b64encode(f"nobody:{password}".encode()).decode()
    assert error(site.device("GET", f"{WRITE}?temp", Authorization=f"Basic {unknown}")) == (
        401, "bad_credentials")
    assert error(site.device("GET", f"{WRITE}?temp", Authorization="Basic !!!")) == (
        401, "bad_credentials")
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as raw:
        raw.sendall(f"GET {WRITE}?temp HTTP/1.1\r\nHost: x\r\n".encode()
                    + b"Authorization: Basic \xff\r\n\r\n")
        assert raw.recv(1000).startswith(b"HTTP/1.1 401")
    # Re-provisioning needs the current password (Basic), then sets the new one.
    new = "another-password-20chars"
    assert error(site.device("POST", "/provision/activate", f"id=pw1&password={new}")) == (
        409, "already_provisioned")
    reply = site.device("POST", "/provision/activate", f"id=pw1&password={new}",
                        Authorization=f"Basic {basic}")
    assert reply.status == 204


def test_password_activation_hashes_off_the_event_loop(site: DeviceSite) -> None:
    """scrypt (~60 ms at the default cost) would stall every connection if it ran on the
    loop: the new password is hashed, and the old one of a rotation checked, in threads."""
    site.op("updateGatewaySettings", provisioning={"auth_type": "password"})
    loop_thread = site.call(threading.get_ident)
    service = site.service
    # (what, thread, whether it was instant: a verification the verifier remembered)
    calls: list[tuple[str, int, bool]] = []
    hash_new, verifier = service.hash_new_password, service.verifier
    verify = verifier.verify

    def hash_spy(password: str) -> str | None:
        calls.append(("hash", threading.get_ident(), False))
        return hash_new(password)

    def verify_spy(stored: str, raw: bytes) -> bool:
        calls.append(("verify", threading.get_ident(), verifier.remembered(stored, raw)))
        return verify(stored, raw)

    service.hash_new_password = hash_spy  # type: ignore[method-assign]
    service.verifier.verify = verify_spy  # type: ignore[method-assign]
    password, new = "a-password-of-twenty+", "another-password-20chars"
    reply = site.device("POST", "/provision/activate", f"id=pw2&password={quote(password)}")
    assert reply.status == 204
    basic = base64.b64encode(f"pw2:{password}".encode()).decode()
    reply = site.device("POST", "/provision/activate", f"id=pw2&password={new}",
                        Authorization=f"Basic {basic}")
    assert reply.status == 204
    slow = [(kind, thread) for kind, thread, instant in calls if not instant]
    assert [kind for kind, _ in slow] == ["hash", "verify", "hash"]
    assert all(thread != loop_thread for _, thread in slow)
    new_basic = base64.b64encode(f"pw2:{new}".encode()).decode()
    assert site.device("POST", WRITE, "temp=4", Authorization=f"Basic {new_basic}").status == 204


def test_password_mode_expired_whitelisting(site: DeviceSite) -> None:
    site.op("updateGatewaySettings", provisioning={"auth_type": "password"})
    site.op("addIdentity", identity="late2", auth={"expire": 1})
    basic = base64.b64encode(b"late2:a-password-of-twenty-chars").decode()
    assert error(site.device("GET", f"{WRITE}?temp", Authorization=f"Basic {basic}")) == (
        401, "expired")


def test_certificate_mode_cannot_activate_over_plain_http(site: DeviceSite) -> None:
    site.op("updateGatewaySettings", provisioning={"auth_type": "certificate"})
    assert error(site.device("POST", "/provision/activate", "id=cert1")) == (
        400, "bad_credentials")


# -- authentication ------------------------------------------------------------------------

def test_authentication_failures(site: DeviceSite) -> None:
    token = token_for(site)
    assert error(site.device("GET", f"{WRITE}?temp")) == (401, "not_authenticated")
    assert error(site.device("GET", f"{WRITE}?temp", token="nope")) == (401, "bad_credentials")
    assert error(site.device("POST", WRITE, "temp=1", token="nope")) == (401, "bad_credentials")
    site.op("updateIdentity", identity="dev1", locked=True)
    assert error(site.device("POST", WRITE, "temp=1", token=token)) == (403, "locked")
    site.op("updateIdentity", identity="dev1", locked=False)
    assert site.device("POST", WRITE, "temp=1", token=token).status == 204
    site.op("updateIdentity", identity="dev1", auth={"expire": 0})  # revoked
    assert error(site.device("POST", WRITE, "temp=2", token=token)) == (401, "bad_credentials")
    assert state(site)["temp"]["reported"] == 1
    debug = [e["type"] for e in site.op("getLogs", type="debug")]
    assert {"not_authenticated", "bad_credentials", "locked"} <= set(debug)


# -- write, read, hybrid (§6.1–§6.3) -------------------------------------------------------

def test_write_then_read(site: DeviceSite) -> None:
    token = token_for(site)
    reply = site.device("POST", WRITE, "temp=21.5&msg=hello%20w%C3%B6rld+x&undefined=1",
                        token=token)
    assert (reply.status, reply.body) == (204, b"")
    got = state(site)
    assert got["temp"]["reported"] == 21.5 and got["msg"]["reported"] == "hello wörld x"
    assert "undefined" not in got
    read = site.device("GET", f"{WRITE}?temp&msg&undefined&cmd", token=token)
    assert read.status == 200 and read.headers["content-type"] == FORM
    assert read.text == "temp=21.5&msg=hello%20w%C3%B6rld%20x"
    [(_, event)] = [e for e in site.events if e[1]["type"] == "data_in"]
    assert event["protocol"] == "http" and len(event["connection_id"]) == 32
    assert event["payload"][0]["values"] == {"temp": 21.5, "msg": "hello wörld x",
                                             "undefined": "1"}


def test_writes_are_mirrored_on_data_topics(site: DeviceSite) -> None:
    """product.md §4: an application subscribed to $data/<cid>/<identity>/<alias> gets the raw
    value of every device write, HTTP ones included."""
    token = token_for(site)
    app = site.call(lambda: site.service.create_app_key(name="watcher"))
    with RawClient(site.running.host, site.running.port) as client:
        client.connect(username=app["key"], password=app["secret"].encode())
        assert client.subscribe(f"$data/{site.cid}/dev1/#", 0) == [0]
        assert site.device("POST", WRITE, "temp=21.50&other=x", token=token).status == 204
        got = {(p.topic, p.payload) for p in (client.recv(), client.recv())}
        assert got == {(f"$data/{site.cid}/dev1/temp", b"21.50"),
                       (f"$data/{site.cid}/dev1/other", b"x")}


def test_write_is_committed_before_204(site: DeviceSite) -> None:
    """The 204 leaves after the group commit: the raw store (not drained) already holds it."""
    token = token_for(site)
    store = site.running.server.store
    from broker.gateway import tables

    def stored() -> Any:
        with store.read() as txn:
            raw = txn.get(tables.STATE, tables.key(site.cid, "dev1"))
        return tables.loads(raw)["temp"]["reported"] if raw else None

    for value in range(5):
        assert site.device("POST", WRITE, f"temp={value}", token=token).status == 204
        assert site.call(stored) == value


def test_concurrent_writes_share_commits(site: DeviceSite) -> None:
    tokens = [token_for(site, f"dev{i}") for i in range(40)]
    committer = site.running.server.committer
    before = site.call(lambda: committer.commits)

    async def burst() -> list[int]:
        async with aiohttp.ClientSession() as session:
            async def one(token: str) -> int:
                async with session.post(f"http://127.0.0.1:{site.port}{WRITE}", data="temp=7",
                                        headers={"X-Exosite-CIK": token,
                                                 "Content-Type": FORM}) as resp:
                    return resp.status
            return list(await asyncio.gather(*(one(t) for t in tokens)))

    assert asyncio.run(burst()) == [204] * 40
    commits = site.call(lambda: committer.commits) - before
    assert 1 <= commits < 40  # grouped: fewer fsyncs than writes
    assert all(state(site, f"dev{i}")["temp"]["reported"] == 7 for i in range(40))


def test_write_without_group_committer(tmp_path: Path) -> None:
    with running_device_site(tmp_path, committer=False) as s:
        define(s, "temp", format="number")
        token = s.activate("solo")
        assert s.device("POST", WRITE, "temp=4", token=token).status == 204
        assert state(s, "solo")["temp"]["reported"] == 4


def test_invalid_values(site: DeviceSite) -> None:
    token = token_for(site)
    assert error(site.device("POST", WRITE, "temp=abc", token=token)) == (400, "invalid_value")
    assert site.device("POST", WRITE, "temp=abc&msg=ok", token=token).status == 204
    assert site.device("POST", WRITE, "temp=abc&other=1", token=token).status == 204
    assert "temp" not in state(site) and state(site)["msg"]["reported"] == "ok"
    assert "invalid_value" in [e["type"] for e in site.op("getLogs", type="debug")]


def test_a_failed_commit_answers_500_and_acknowledges_nothing(site: DeviceSite) -> None:
    token = token_for(site)
    store = site.running.server.store

    def broken(ops: Any) -> None:
        raise OSError("disk on fire")

    store.apply = broken  # the writer thread's commit of the next batch fails
    try:
        assert error(site.device("POST", WRITE, "temp=1", token=token)) == (
            500, "storage_error")
    finally:
        del store.apply
    assert "temp" not in state(site)
    assert site.device("POST", WRITE, "temp=2", token=token).status == 204
    assert state(site)["temp"]["reported"] == 2


def test_form_body_limit(site: DeviceSite) -> None:
    token = token_for(site)
    big = "msg=" + "x" * (4 * 1024 * 1024)
    assert error(site.device("POST", WRITE, big, token=token)) == (413, "too_large")


def test_empty_write_is_a_no_op(site: DeviceSite) -> None:
    token = token_for(site)
    assert site.device("POST", WRITE, "", token=token).status == 204
    assert [e for _, e in site.events if e["type"] == "data_in"] == []


@pytest.mark.parametrize(("body", "headers", "reason"), [
    ("temp=%zz", {}, "bad_form"),
    ("temp=%4", {}, "bad_form"),
    ("=5", {}, "bad_form"),
    ("temp", {}, "bad_form"),
    ("temp=%FF", {}, "bad_encoding"),
    (b"temp=\xff", {}, "bad_encoding"),
    ('{"temp": 1}', {"Content-Type": "application/json"}, "bad_content_type"),
    ("temp=1", {"Content-Type": f"{FORM[:33]}; charset=latin-1"}, "bad_content_type"),
])
def test_bad_bodies(site: DeviceSite, body: str | bytes, headers: dict[str, str],
                    reason: str) -> None:
    token = token_for(site)
    assert error(site.device("POST", WRITE, body, token=token, **headers)) == (400, reason)
    assert "temp" not in state(site)


def test_body_without_content_type_is_a_form(site: DeviceSite) -> None:
    token = token_for(site)
    reply = site.request("POST", WRITE, "temp=8", {"X-Exosite-CIK": token})
    assert reply.status == 204 and state(site)["temp"]["reported"] == 8


def test_read_returns_set_for_settable_and_204_when_empty(site: DeviceSite) -> None:
    token = token_for(site)
    assert site.device("GET", f"{WRITE}?temp&cmd", token=token).status == 204
    assert site.device("GET", WRITE, token=token).status == 204
    site.op("setIdentityState", identity="dev1", cmd="reboot")
    site.device("POST", WRITE, "temp=5", token=token)
    assert site.device("GET", f"{WRITE}?cmd&temp", token=token).text == "cmd=reboot&temp=5"
    assert error(site.device("GET", f"{WRITE}?te%zzmp", token=token)) == (400, "bad_form")


def test_hybrid_write_then_read(site: DeviceSite) -> None:
    token = token_for(site)
    site.op("setIdentityState", identity="dev1", cmd="on")
    reply = site.device("POST", f"{WRITE}?temp&cmd", "temp=9", token=token)
    assert (reply.status, reply.text) == (200, "temp=9&cmd=on")
    assert site.device("POST", f"{WRITE}?undefined", "temp=10", token=token).status == 204


# -- record (§6.4) ---------------------------------------------------------------------------

def test_record_stores_points(site: DeviceSite) -> None:
    token = token_for(site)
    now = int(time.time())
    body = f"alias=temp&{now - 20}=1&{now - 10}=2&alias=msg&{now - 5}=a&{(now - 4) * 1000}=b"
    assert site.device("POST", "/onep:v1/stack/record", body, token=token).status == 204
    got = state(site)
    assert (got["temp"]["reported"], got["temp"]["timestamp"]) == (2, (now - 10) * 1_000_000)
    assert (got["msg"]["reported"], got["msg"]["timestamp"]) == ("b", (now - 4) * 1_000_000)
    [(_, event)] = [e for e in site.events if e[1]["type"] == "data_in"]
    assert [p["timestamp"] for p in event["payload"]] == [
        (now - t) * 1_000_000 for t in (20, 10, 5, 4)]


def test_record_refuses_future_and_duplicate_points(site: DeviceSite) -> None:
    token = token_for(site)
    now = int(time.time())
    site.device("POST", "/onep:v1/stack/record", f"alias=temp&{now - 100}=1", token=token)
    body = (f"alias=temp&{now - 100}=5&{now - 50}=6&{now - 50}=7&{now + 3600}=8"
            f"&alias=msg&{now + 1000}=x")
    reply = site.device("POST", "/onep:v1/stack/record", body, token=token)
    assert reply.status == 409
    assert reply.text == f"temp={now - 100},{now - 50},{now + 3600}&msg={now + 1000}"
    assert state(site)["temp"]["reported"] == 6  # the accepted point is stored
    assert "msg" not in state(site)


@pytest.mark.parametrize("body", ["1700000000=5", "alias=temp&soon=5", "alias=&1=2"])
def test_record_bad_forms(site: DeviceSite, body: str) -> None:
    token = token_for(site)
    assert error(site.device("POST", "/onep:v1/stack/record", body, token=token)) == (
        400, "bad_form")


# -- connector selection by Host -------------------------------------------------------------

def test_host_selects_the_connector(site: DeviceSite) -> None:
    other = site.call(lambda: site.service.create_connector(connector_id="second1"))["id"]
    site.call(lambda: site.service.addGatewayResource(alias="temp", format="number",
                                                      connector_id=other))
    host = {"Host": f"{other}.m2.localhost:{site.port}"}
    reply = site.device("POST", "/provision/activate", "id=dev9", **host)
    assert reply.status == 200
    token = reply.text
    assert site.device("POST", WRITE, "temp=1", token=token, **host).status == 204
    # The same token means nothing to the default connector.
    assert error(site.device("POST", WRITE, "temp=1", token=token)) == (401, "bad_credentials")
    devmode = {"Host": f"{other.upper()}.DEVMODE-M2.localhost."}
    assert site.device("GET", f"{WRITE}?temp", token=token, **devmode).text == "temp=1"
    assert site.call(lambda: site.service.getIdentityState(identity="dev9",
                                                           connector_id=other))["temp"]
    assert error(site.device("GET", "/timestamp", Host="nosuch.m2.localhost")) == (
        404, "not_found")
    assert error(site.device("GET", "/timestamp", Host="a.b.m2.localhost")) == (
        404, "not_found")
    raw = socket.create_connection(("127.0.0.1", site.port), timeout=10)
    with raw:
        raw.sendall(b"GET /timestamp HTTP/1.1\r\nHost: \xff.m2.localhost\r\n\r\n")
        assert raw.recv(1000).startswith(b"HTTP/1.1 404")
    assert site.device("GET", "/timestamp", Host="[::1]:8080").status == 200
    assert site.device("GET", "/timestamp", Host=f"{site.cid}.m2.elsewhere").status == 200


# -- the listener in a real process ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} not listening") from None
            time.sleep(0.05)


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--data", str(tmp_path / "data"),
         "--mqtt-tls", "", "--https", "", *args],  # TLS off: its defaults are public
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read().decode() if proc.stdout else ""


def test_serve_dev_opens_the_device_listener(tmp_path: Path) -> None:
    http, mqtt, admin = _free_port(), _free_port(), _free_port()
    proc = _serve(tmp_path, "--dev", "--http", f"127.0.0.1:{http}", "--mqtt",
                  f"127.0.0.1:{mqtt}", "--admin", f"127.0.0.1:{admin}")
    try:
        _wait_for_port(admin, proc)  # the admin site starts after the device site
        base = f"http://127.0.0.1:{http}"
        with urllib.request.urlopen(f"{base}/timestamp", timeout=5) as resp:
            assert abs(int(resp.read()) - time.time()) < 5
        req = urllib.request.Request(f"{base}/provision/activate", data=b"id=cli1",
                                     headers={"Content-Type": FORM})
        with urllib.request.urlopen(req, timeout=5) as resp:
            token = resp.read().decode()
        assert len(token) == 40
        req = urllib.request.Request(f"{base}{WRITE}", data=b"temp=1",
                                     headers={"Content-Type": FORM, "X-Exosite-CIK": token})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 204
        # The admin app's /metrics counts the device API's requests by route and status.
        token = (tmp_path / "data" / "admin.token").read_text().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{admin}/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            metrics = resp.read().decode()
        for line in ('fleetgate_http_device_requests_total{route="/timestamp",status="200"} 1.0',
                     'fleetgate_http_device_requests_total{route="/provision/activate",'
                     'status="200"} 1.0',
                     'fleetgate_http_device_requests_total{route="/onep:v1/stack/alias",'
                     'status="204"} 1.0',
                     "fleetgate_http_long_polls_waiting 0.0"):
            assert line in metrics.splitlines()
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert f"http 127.0.0.1:{http}" in out  # the ready line lists the listener


def test_the_device_listener_stays_closed_without_devmode_or_http(tmp_path: Path) -> None:
    http, mqtt, admin = _free_port(), _free_port(), _free_port()
    config = tmp_path / "fleetgate.toml"
    config.write_text(f'[listeners]\nhttp = "127.0.0.1:{http}"\n', encoding="utf-8")
    proc = _serve(tmp_path, "--config", str(config), "--mqtt", f"127.0.0.1:{mqtt}",
                  "--admin", f"127.0.0.1:{admin}")
    try:
        _wait_for_port(admin, proc)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", http), timeout=0.5).close()
    finally:
        _stop(proc)
