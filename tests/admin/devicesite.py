"""Test helpers for the device HTTP API and content tests: a gateway broker on a uvloop thread
(real LMDB in ``tmp_path``, ``storage.sync = always``, so writes go through the threaded group
committer), the device HTTP site and the admin site started on that loop on free ports, and a
small ``http.client`` wrapper that sends exactly the headers a test gives (``Host`` included).
"""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from admin.site import start_device_site, start_site
from broker.gateway.service import Device2Service
from tests.conftest import RunningBroker, make_config, start_gateway

ADMIN_TOKEN = "device-test-token-0123456789abcdefghijklmnopqrstuvwxyz"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class DeviceSite:
    running: RunningBroker
    service: Device2Service
    cid: str
    port: int
    admin_port: int
    runners: list[web.AppRunner]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    # -- on the broker's loop ---------------------------------------------------------

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.running.loop).result(timeout)

    def op(self, operation: str, **args: Any) -> Any:
        """A Device2 operation on the service, on the loop (as the admin API calls it)."""
        return self.call(lambda: self.service.call(self.cid, operation, args))

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        return self.running.wait(predicate, timeout)

    # -- HTTP -------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | str | Iterable[bytes] | None = None,
                headers: dict[str, str] | None = None, *, port: int | None = None,
                timeout: float = 30.0, chunked: bool = False) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            data = body.encode() if isinstance(body, str) else body
            conn.request(method, path, body=data, headers=dict(headers or {}),
                         encode_chunked=chunked)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                         resp.read())
        finally:
            conn.close()

    def device(self, method: str, path: str, body: bytes | str | None = None, *,
               token: str | None = None, form: bool = True, **headers: str) -> Reply:
        """A device request: ``token`` as ``X-Exosite-CIK``, a body as a form."""
        hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            hdrs["X-Exosite-CIK"] = token
        if body is not None and form:
            hdrs.setdefault("Content-Type", FORM)
        return self.request(method, path, body, hdrs)

    def admin(self, method: str, path: str, body: bytes | Iterable[bytes] | None = None,
              headers: dict[str, str] | None = None, **kw: Any) -> Reply:
        hdrs = {"Authorization": f"Bearer {ADMIN_TOKEN}", **(headers or {})}
        return self.request(method, f"/api/v1/connectors/{self.cid}{path}", body, hdrs,
                            port=self.admin_port, **kw)

    def activate(self, identity: str) -> str:
        reply = self.device("POST", "/provision/activate", f"id={identity}")
        assert reply.status == 200, (reply.status, reply.body)
        return reply.text


@contextmanager
def running_device_site(tmp_path: Path, *, content_max_size: int | None = None,
                        committer: bool = True, content: bool = True) -> Iterator[DeviceSite]:
    """The gateway, the device site (``committer=False``: without the group committer, each
    write in its own transaction; ``content=False``: a service without a content directory)
    and the admin site; events collected in ``site.events``."""
    config = make_config(tmp_path, allow_anonymous=False)
    extra: dict[str, Any] = {"content_dir": tmp_path / "data" / "content" if content else None}
    if content_max_size is not None:
        extra["content_max_size"] = content_max_size

    running, gateway, stop = start_gateway(config, **extra)
    runners: list[web.AppRunner] = []
    try:
        service = gateway.service
        submit = running.server.committer.submit if committer else None

        async def start() -> tuple[int, int]:
            runner, port = await start_device_site(service, "127.0.0.1:0", "localhost", submit,
                                                   gateway.mirror_data)
            runners.append(runner)
            admin, admin_port = await start_site(service, ADMIN_TOKEN, "127.0.0.1:0",
                                                 running.server)
            runners.append(admin)
            return port, admin_port

        port, admin_port = asyncio.run_coroutine_threadsafe(start(), running.loop).result(10)
        site = DeviceSite(running, service, gateway.connector, port, admin_port, runners)
        running.call(lambda: service.event_listeners.append(
            lambda cid, event: site.events.append((cid, event))))
        yield site
    finally:
        for runner in reversed(runners):
            asyncio.run_coroutine_threadsafe(runner.cleanup(), running.loop).result(15)
        stop()


def define(site: DeviceSite, alias: str, **definition: Any) -> None:
    site.op("addGatewayResource", alias=alias, **definition)
