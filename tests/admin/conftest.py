"""A running gateway with its admin API, for the REST tests: a gateway broker on a uvloop thread
(``tests.conftest.start_broker``), the admin site started on that same loop on a free port,
and ``AdminApi`` making real HTTP requests (urllib) from the test thread.

``admin_api`` is per test (a fresh LMDB in ``tmp_path``); ``running_admin`` is the context
manager behind it, for a module-scoped server. ``tests/admin/test_api.py`` keeps its own
``api`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from admin.site import start_site
from broker.gateway.service import Device2Service
from tests.conftest import RunningBroker, make_config, start_gateway

ADMIN_TOKEN = "rest-token-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class AdminApi:
    base: str
    cid: str
    broker: RunningBroker
    service: Device2Service
    app: web.Application

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                chunks: Iterable[bytes] | None = None, content_type: str | None = None,
                token: str | None = ADMIN_TOKEN, headers: dict[str, str] | None = None,
                timeout: float = 30) -> Answer:
        """One request; ``body`` is sent as JSON, ``raw`` as is, ``chunks`` with chunked
        transfer encoding (a body of unknown length, as a streaming client sends it)."""
        data: Any = None
        if chunks is not None:
            data = iter(chunks)
        elif raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            content_type = content_type or "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if content_type is not None:
            req.add_header("Content-Type", content_type)
        if chunks is not None:
            req.add_header("Transfer-Encoding", "chunked")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return Answer(resp.status, _decode(resp.read()), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _decode(exc.read()), dict(exc.headers))

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def url(self, path: str = "") -> str:
        """A path under this connector: ``url("/identities")``."""
        return f"/api/v1/connectors/{self.cid}{path}"

    def call(self, fn: Any) -> Any:
        """Run ``fn()`` on the server's loop (to read the service as handlers see it)."""
        return self.broker.call(fn)


def _decode(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data


@contextmanager
def running_admin(tmp_path: Path, **service_args: Any) -> Iterator[AdminApi]:
    """``service_args`` go to the Device2Service (``content_dir=…``)."""
    config = make_config(tmp_path, allow_anonymous=False)
    running, gateway, stop = start_gateway(config, **service_args)
    try:
        runner, port = asyncio.run_coroutine_threadsafe(
            start_site(gateway.service, ADMIN_TOKEN, "127.0.0.1:0"), running.loop).result(10)
        try:
            yield AdminApi(f"http://127.0.0.1:{port}", gateway.connector, running,
                           gateway.service, runner.app)
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), running.loop).result(10)
    finally:
        stop()


@pytest.fixture
def admin_api(tmp_path: Path) -> Iterator[AdminApi]:
    with running_admin(tmp_path) as api:
        yield api
