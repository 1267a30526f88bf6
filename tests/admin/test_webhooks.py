"""Webhooks (admin/webhooks.py): events from real device traffic and Device2 operations POSTed
to local aiohttp receivers on 127.0.0.1 that fail, hang or refuse as each test scripts; retries,
backoff, the queue bound and the counters (read through ``/metrics``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from admin.webhooks import WEBHOOKS_KEY, redact
from broker.config import ConfigError, load
from tests.admin.gatewaysite import Site, provision, start_gateway_site

HANG = -1  # a scripted answer: hold the request until the receiver is released


@dataclass
class Hit:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on its own loop thread that answers from a script (then 200)."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script: deque[int] = deque(script or [])
        self.hits: list[Hit] = []
        self.loop = asyncio.new_event_loop()
        self.release = asyncio.Event()
        self.hold_all = False
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits.append(Hit(time.monotonic(), dict(request.headers), body))
        status = self.script.popleft() if self.script else 200
        if status == HANG or self.hold_all:
            await self.release.wait()
            status = 200
        return web.Response(status=status)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_hits(self, count: int, timeout: float = 5.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while len(self.hits) < count:
            assert time.monotonic() < deadline, f"{len(self.hits)} of {count} requests"
            time.sleep(0.005)
        return list(self.hits)

    def open_gate(self) -> None:
        self.hold_all = False
        self.loop.call_soon_threadsafe(self.release.set)

    def stop(self) -> None:
        self.open_gate()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(script: list[int] | None = None) -> Receiver:
        made.append(Receiver(script))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    stops: list[Callable[[], None]] = []

    def make(**webhooks: Any) -> Site:
        webhooks.setdefault("backoff_base", 0.1)
        webhooks.setdefault("backoff_max", 1.0)
        webhooks.setdefault("timeout", 2.0)
        site, stop = start_gateway_site(tmp_path / f"s{len(stops)}", **webhooks)
        stops.append(stop)
        return site

    yield make
    for stop in reversed(stops):
        stop()


def counters(site: Site) -> dict[tuple[str, str], float]:
    """The webhook samples of ``/metrics``, by (name, url label)."""
    status, _, body = site.request("GET", "/metrics")
    assert status == 200
    return {(s.name, s.labels.get("url", "")): s.value
            for family in text_string_to_metric_families(body.decode())
            if family.name.startswith("fleetgate_webhook") for s in family.samples}


def deleted_events(site: Site, identities: list[str]) -> None:
    """One ``deleted`` event per identity, all in one loop turn (Device2 operations)."""
    def run() -> None:
        for identity in identities:
            site.service.addIdentity(identity=identity)
        for identity in identities:
            site.service.removeIdentity(identity=identity)
    site.call(run)


def test_retries_with_backoff_then_delivers(sites: Callable[..., Site],
                                            receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([503, 500, 200])
    site = sites(urls=[receiver.url], max_attempts=5)
    provision(site, "dev1")  # a device's $provision: the provisioned event
    hits = receiver.wait_hits(3)
    event = hits[2].event
    assert (event["type"], event["identity"]) == ("provisioned", "dev1")
    assert event["auth"] == {"type": "token"} and event["protocol"] == "mqtt"
    assert {h.body for h in hits} == {hits[0].body}  # the same event each time
    ids = {h.headers["X-Fleetgate-Delivery"] for h in hits}
    assert len(ids) == 1  # one delivery id across retries: receivers can drop duplicates
    headers = hits[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Fleetgate-Connector"] == site.cid
    assert headers["X-Fleetgate-Event"] == "provisioned"
    assert "X-Fleetgate-Signature" not in headers
    gaps = [b.at - a.at for a, b in zip(hits, hits[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # backoff_base, then doubled
    assert gaps[1] < 0.2 + 1.0
    label = redact(receiver.url)
    site.wait(lambda: site.app[WEBHOOKS_KEY].targets[0].delivered == 1)  # type: ignore[union-attr]
    c = counters(site)
    assert c[("fleetgate_webhook_delivered_total", label)] == 1
    assert c[("fleetgate_webhook_failed_attempts_total", label)] == 2
    assert c[("fleetgate_webhook_gave_up_total", label)] == 0
    assert c[("fleetgate_webhook_queued", label)] == 0


def test_gives_up_after_max_attempts_then_goes_on(sites: Callable[..., Site],
                                                  receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([500, 502, 429])
    site = sites(urls=[receiver.url], max_attempts=3)
    deleted_events(site, ["a", "b"])
    hits = receiver.wait_hits(4)
    assert [h.event["identity"] for h in hits] == ["a", "a", "a", "b"]
    target = site.app[WEBHOOKS_KEY].targets[0]  # type: ignore[union-attr]
    site.wait(lambda: target.delivered == 1)
    c = counters(site)
    label = target.label
    assert c[("fleetgate_webhook_gave_up_total", label)] == 1
    assert c[("fleetgate_webhook_failed_attempts_total", label)] == 3
    assert c[("fleetgate_webhook_delivered_total", label)] == 1
    # "b" went after "a" left the queue: "a" is given up for good, not retried again.
    assert site.call(lambda: len(target.queue)) == 0 and len(receiver.hits) == 4


def test_a_refusal_is_not_retried(sites: Callable[..., Site],
                                  receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([404])
    site = sites(urls=[receiver.url])
    deleted_events(site, ["a", "b"])
    hits = receiver.wait_hits(2)
    assert [h.event["identity"] for h in hits] == ["a", "b"]
    target = site.app[WEBHOOKS_KEY].targets[0]  # type: ignore[union-attr]
    site.wait(lambda: target.delivered == 1)
    assert (target.rejected, target.failed_attempts, target.gave_up) == (1, 0, 0)


def test_a_timeout_is_a_failed_attempt(sites: Callable[..., Site],
                                       receivers: Callable[..., Receiver]) -> None:
    receiver = receivers([HANG])
    site = sites(urls=[receiver.url], timeout=0.3)
    deleted_events(site, ["a"])
    hits = receiver.wait_hits(2)
    assert hits[1].at - hits[0].at >= 0.3 + 0.1  # the timeout, then backoff_base
    target = site.app[WEBHOOKS_KEY].targets[0]  # type: ignore[union-attr]
    site.wait(lambda: target.delivered == 1)
    assert target.failed_attempts == 1


def test_queue_bound_drops_and_counts(sites: Callable[..., Site],
                                      receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    receiver.hold_all = True
    site = sites(urls=[receiver.url], queue=3)
    deleted_events(site, ["e1"])
    receiver.wait_hits(1)  # e1 is being delivered (still first in its queue)
    deleted_events(site, [f"e{n}" for n in range(2, 11)])
    target = site.app[WEBHOOKS_KEY].targets[0]  # type: ignore[union-attr]
    c = counters(site)
    assert c[("fleetgate_webhook_dropped_total", target.label)] == 7  # e4..e10
    assert c[("fleetgate_webhook_queued", target.label)] == 3
    receiver.open_gate()
    hits = receiver.wait_hits(3)
    site.wait(lambda: target.delivered == 3)
    assert [h.event["identity"] for h in hits] == ["e1", "e2", "e3"]  # in order
    assert len(receiver.hits) == 3


def test_a_failing_url_does_not_delay_another(sites: Callable[..., Site],
                                              receivers: Callable[..., Receiver]) -> None:
    failing = receivers([503] * 100)
    working = receivers()
    site = sites(urls=[failing.url, working.url], backoff_base=0.5, backoff_max=5.0)
    deleted_events(site, ["a", "b"])
    hits = working.wait_hits(2, timeout=1.0)  # while the failing URL backs off
    assert [h.event["identity"] for h in hits] == ["a", "b"]
    assert all(h.event["identity"] == "a" for h in failing.hits)
    c = counters(site)
    assert c[("fleetgate_webhook_delivered_total", redact(working.url))] == 2
    assert c[("fleetgate_webhook_delivered_total", redact(failing.url))] == 0
    assert c[("fleetgate_webhook_queued", redact(failing.url))] == 2


def test_signature(sites: Callable[..., Site], receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    site = sites(urls=[receiver.url], secret="s3cret")
    deleted_events(site, ["a"])
    (hit,) = receiver.wait_hits(1)
    expected = hmac.new(b"s3cret", hit.body, hashlib.sha256).hexdigest()
    assert hit.headers["X-Fleetgate-Signature"] == f"sha256={expected}"


def test_stop_with_events_pending_does_not_hang(sites: Callable[..., Site],
                                                receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    receiver.hold_all = True
    site = sites(urls=[receiver.url])
    hooks = site.app[WEBHOOKS_KEY]
    assert hooks is not None
    assert site.call(lambda: hooks._on_event in site.service.event_listeners)
    deleted_events(site, ["a", "b", "c"])
    receiver.wait_hits(1)
    started = time.monotonic()
    site.cleanup()
    assert time.monotonic() - started < 3.0
    assert site.call(lambda: hooks._on_event not in site.service.event_listeners)
    assert site.call(lambda: sum(len(t.queue) for t in hooks.targets)) == 0


def test_off_without_urls(sites: Callable[..., Site]) -> None:
    site = sites()
    assert site.app[WEBHOOKS_KEY] is None
    assert counters(site) == {}


def test_redact_keeps_credentials_out_of_labels() -> None:
    assert redact("https://user:pw@example.com:8443/in?token=x#f") == \
        "https://example.com:8443/in"
    assert redact("http://[::1]:9/h") == "http://[::1]:9/h"


@pytest.mark.parametrize("table,message", [
    ({"urls": "http://x/"}, "webhooks.urls must be list"),
    ({"urls": ["http://x/", 3]}, "list of str"),
    ({"urls": ["ftp://x/"]}, "http(s) URL"),
    ({"urls": ["http:///nohost"]}, "http(s) URL"),
    ({"urls": ["http://x/", "http://x/"]}, "twice"),
    ({"queue": 0}, "at least 1"),
    ({"max_attempts": 0}, "at least 1"),
    ({"timeout": 0}, "timeout must be positive"),
    ({"backoff_base": float("inf")}, "backoff_base must be positive"),
    ({"backoff_base": 2.0, "backoff_max": 1.0}, "backoff_max must be at least"),
    ({"nope": 1}, "unknown configuration key webhooks.nope"),
])
def test_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(None, {"webhooks": table})


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "fleetgate.toml"
    path.write_text('[webhooks]\nurls = ["https://hooks.example/a", "http://127.0.0.1:9/b"]\n'
                    "queue = 50\nmax_attempts = 4\ntimeout = 3\nsecret = \"k\"\n")
    w = load(path).webhooks
    assert w.urls == ["https://hooks.example/a", "http://127.0.0.1:9/b"]
    assert (w.queue, w.max_attempts, w.timeout, w.secret) == (50, 4, 3.0, "k")
    assert load(None).webhooks.urls == []
