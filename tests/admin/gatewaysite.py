"""Test helpers for the observability tests (SSE streams, webhooks, metrics): a gateway broker
on a uvloop thread (real LMDB in ``tmp_path``) with the admin site started on that loop and
given the running server, plus raw-MQTT device helpers (connector-spec §3.4, §5.1)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from admin.site import start_site
from broker.gateway.service import Device2Service
from broker.mqtt import codec
from broker.mqtt.packets import Connect, Puback
from tests.conftest import RunningBroker, make_config, start_gateway
from tests.rawclient import RawClient, provision_mqtt

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Site:
    running: RunningBroker
    service: Device2Service
    cid: str
    runner: web.AppRunner
    port: int
    cleaned: bool = False

    @property
    def app(self) -> web.Application:
        return self.runner.app

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)

    def cleanup(self, timeout: float = 10.0) -> None:
        """Stop the admin site (``runner.cleanup()``, as at shutdown), once."""
        if not self.cleaned:
            self.cleaned = True
            self.run(self.runner.cleanup(), timeout)

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        return self.running.wait(predicate, timeout)

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the broker's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.running.loop).result(timeout)

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            hdrs = dict(headers or {})
            data = None if body is None else json.dumps(body).encode()
            if data is not None:
                hdrs["Content-Type"] = "application/json"
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def op(self, operation: str, args: dict[str, Any]) -> Any:
        status, _, body = self.request(
            "POST", f"/api/v1/connectors/{self.cid}/device2/{operation}", args)
        assert status == 200, (status, body)
        return json.loads(body)


def start_gateway_site(tmp_path: Path, **webhooks: Any) -> tuple[Site, Callable[[], None]]:
    """The gateway broker and its admin site; ``webhooks`` fills the ``[webhooks]`` table
    (set after the broker started, so a test can point it at a receiver on the loop)."""
    config = make_config(tmp_path, allow_anonymous=False)

    running, gateway, stop_broker = start_gateway(config)
    for key, value in webhooks.items():
        setattr(config.webhooks, key, value)
    config.validate()
    runner, port = asyncio.run_coroutine_threadsafe(
        start_site(gateway.service, TOKEN, "127.0.0.1:0", running.server), running.loop
    ).result(10)
    site = Site(running, gateway.service, gateway.connector, runner, port)
    site.call(lambda: site.service.addGatewayResource(alias="temp", format="number"))

    def stop() -> None:
        site.cleanup()
        stop_broker()

    return site, stop


def provision(site: Site, identity: str) -> str:
    return provision_mqtt(site.running.host, site.running.port, identity)


def device(site: Site, token: str) -> RawClient:
    """§5.1 token mode: username empty, password = token."""
    c = RawClient(site.running.host, site.running.port)
    c.connect(username="", password=token.encode())
    return c


def write(client: RawClient, alias: str, value: bytes, packet_id: int = 1) -> None:
    """§5.2 ``$resource/<alias>`` at QoS 1: the PUBACK comes after the write is stored."""
    client.publish(f"$resource/{alias}", value, qos=1, packet_id=packet_id)
    client.expect(Puback(packet_id))


def refused_connect(site: Site, source: str = "127.0.0.1", timeout: float = 5.0) -> None:
    """A device CONNECT with a wrong token from ``source`` (any 127.x address on Linux): the
    broker refuses it (debug reason ``bad_credentials``) and closes the connection."""
    sock = socket.create_connection((site.running.host, site.running.port), timeout=timeout,
                                    source_address=(source, 0))
    try:
        sock.sendall(codec.encode(Connect("", True, 60, username="", password=b"x" * 40)))
        deadline = time.monotonic() + timeout
        while sock.recv(4096):  # the CONNACK, then the close
            assert time.monotonic() < deadline, "the broker did not close the connection"
    finally:
        sock.close()
