"""The admin API over real HTTP: a gateway broker on a thread's loop, the admin site started on
that same loop, urllib requests from the test thread; and ``python -m broker serve`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.site import start_site
from tests.conftest import make_config, start_gateway

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Api:
    base: str
    cid: str

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                raw: bytes | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def op(self, operation: str, args: dict[str, Any]) -> tuple[int, Any]:
        return self.request("POST", f"/api/v1/connectors/{self.cid}/device2/{operation}", args)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    config = make_config(tmp_path, allow_anonymous=False)

    running, gateway, stop = start_gateway(config)
    runner, port = asyncio.run_coroutine_threadsafe(
        start_site(gateway.service, TOKEN, "127.0.0.1:0"), running.loop).result(10)
    try:
        yield Api(f"http://127.0.0.1:{port}", gateway.connector)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), running.loop).result(10)
        stop()


def test_health_needs_no_token(api: Api) -> None:
    assert api.request("GET", "/api/v1/health", token=None) == (200, {"status": "ok"})


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_unauthorized(api: Api, token: str | None) -> None:
    status, body = api.request("GET", "/api/v1/connectors", token=token)
    assert status == 401
    assert body["status"] == 401 and body["code"] == "unauthorized" and body["message"]


def test_wrong_scheme_is_unauthorized(api: Api) -> None:
    req = urllib.request.Request(api.base + "/api/v1/connectors")
    req.add_header("Authorization", f"Basic {TOKEN}")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401


def test_connectors_list(api: Api) -> None:
    status, body = api.request("GET", "/api/v1/connectors")
    assert status == 200
    assert [(c["id"], c["default"]) for c in body] == [(api.cid, True)]
    assert {"id", "name", "default"} <= set(body[0])


def test_device2_round_trip(api: Api) -> None:
    status, _ = api.op("addGatewayResource", {"alias": "temp", "format": "number"})
    assert status == 200
    status, body = api.op("addIdentity", {"identity": "dev1"})
    assert status == 200, body
    status, body = api.op("getIdentity", {"identity": "dev1"})
    assert status == 200 and body["identity"] == "dev1"
    status, body = api.op("listIdentities", {})
    assert status == 200
    assert [d["identity"] for d in body["devices"]] == ["dev1"]


def test_service_error_mapped(api: Api) -> None:
    status, body = api.op("getIdentity", {"identity": "nobody"})
    assert status == 404
    assert body["status"] == 404 and body["code"] == "not_found" and "nobody" in body["message"]


def test_unknown_operation_and_connector(api: Api) -> None:
    status, body = api.op("noSuchOperation", {})
    assert (status, body["code"]) == (404, "not_found")
    status, body = api.request("POST", "/api/v1/connectors/nosuchconnect/device2/listIdentities",
                               {})
    assert (status, body["status"]) == (404, 404)


def test_bad_arguments(api: Api) -> None:
    status, body = api.op("getIdentity", {"wrong": 1})
    assert (status, body["code"]) == (400, "bad_request")


def test_bad_json(api: Api) -> None:
    path = f"/api/v1/connectors/{api.cid}/device2/listIdentities"
    status, body = api.request("POST", path, raw=b"{not json")
    assert (status, body["code"], body["status"]) == (400, "bad_request", 400)
    status, body = api.request("POST", path, raw=b"[1, 2]")
    assert (status, body["code"]) == (400, "bad_request")


def test_unknown_route_is_json_404(api: Api) -> None:
    status, body = api.request("GET", "/api/v1/nothing")
    assert (status, body["status"], body["code"]) == (404, 404, "not_found")


def test_apps_create_list_delete(api: Api) -> None:
    path = f"/api/v1/connectors/{api.cid}/apps"
    status, created = api.request("POST", path, {"name": "dashboard"})
    assert status == 200 and set(created) == {"key", "secret"}
    status, listed = api.request("GET", path)
    assert status == 200
    assert [(a["key"], a["name"]) for a in listed] == [(created["key"], "dashboard")]
    assert all("secret" not in a for a in listed)
    assert api.request("DELETE", f"{path}/{created['key']}") == (200, {})
    assert api.request("GET", path) == (200, [])
    status, body = api.request("DELETE", f"{path}/{created['key']}")
    assert (status, body["code"]) == (404, "not_found")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_serve_writes_token_and_answers_health(tmp_path: Path) -> None:
    mqtt_port, admin_port = _free_port(), _free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--mqtt-tls", "", "--https", "",
         "--mqtt", f"127.0.0.1:{mqtt_port}",
         "--admin", f"127.0.0.1:{admin_port}", "--data", str(data)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        def healthy() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                url = f"http://127.0.0.1:{admin_port}/api/v1/health"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        _wait_for(healthy)
        token_file = data / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 40
        req = urllib.request.Request(f"http://127.0.0.1:{admin_port}/api/v1/connectors",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert [c["default"] for c in json.loads(resp.read())] == [True]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert out.count(token) == 1  # printed once, on creation
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
