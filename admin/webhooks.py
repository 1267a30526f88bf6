"""Webhooks (connector-spec §10 "Delivery to applications"): every event the service emits
(already filtered by the connector's ``events.types``) is POSTed as JSON to each URL of the
``[webhooks]`` configuration.

The POST: body = the §10 event object; headers ``Content-Type: application/json``,
``X-Fleetgate-Connector`` (the connector id), ``X-Fleetgate-Event`` (the event type),
``X-Fleetgate-Delivery`` (an id that stays the same across retries of one event, for the
receiver to drop duplicates) and, when ``secret`` is set, ``X-Fleetgate-Signature: sha256=<hex
HMAC-SHA256 of the body>``. A 2xx answer delivers it.

At least once while the process runs, in order per URL: each URL has its own bounded queue and
one sender, so a slow or failing receiver delays only itself. A failed attempt (connection
error, timeout, 408, 429, 5xx) is retried after ``backoff_base * 2**(n-1)`` seconds (at most
``backoff_max``; a longer ``Retry-After`` is honoured up to it) until ``max_attempts``; then the
event is given up. Any other answer (3xx, 4xx) rejects it at once: the receiver said no, and
retrying would not change its mind. An event arriving while its URL's queue holds ``queue``
events is dropped. All of these are counted per URL (``/metrics``) and reported in the process
log (logger ``fleetgate.webhooks``: a warning when a URL starts failing and for each event given
up, dropped or rejected, with a count; an info line when it recovers). Nothing is persisted:
events still queued when the process stops are lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import os
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from broker.config import WebhooksConfig
from broker.gateway.events import Event

log = logging.getLogger("fleetgate.webhooks")

RETRY_STATUSES = frozenset({408, 429})  # and every 5xx


def _worth_logging(count: int) -> bool:
    """The first of a kind and every 1000th: a dead receiver must not flood the log."""
    return count == 1 or count % 1000 == 0


def redact(url: str) -> str:
    """The URL without user info, query and fragment (they may hold credentials): for logs
    and metric labels."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Delivery:
    """One event for every URL: its body is encoded once, on the first attempt."""

    __slots__ = ("cid", "event", "id", "_body")

    def __init__(self, cid: str, event: Event, delivery_id: str) -> None:
        self.cid = cid
        self.event = event
        self.id = delivery_id
        self._body: bytes | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = json.dumps(self.event, default=str, separators=(",", ":")).encode()
        return self._body


class Target:
    """One URL: its queue, its sender's state and its counters."""

    def __init__(self, url: str, limit: int) -> None:
        self.url = url
        self.label = redact(url)
        self.queue: deque[Delivery] = deque()
        self.limit = limit
        self.wake = asyncio.Event()
        self.failing = False
        self.delivered = 0  # events answered 2xx
        self.failed_attempts = 0  # attempts that failed (each retry counts)
        self.gave_up = 0  # events dropped after max_attempts
        self.rejected = 0  # events answered 3xx/4xx (not retried)
        self.dropped = 0  # events not queued: the queue was full

    def offer(self, delivery: Delivery) -> None:
        if len(self.queue) >= self.limit:
            self.dropped += 1
            if _worth_logging(self.dropped):
                log.warning("webhook %s: queue full (%d events), %d events dropped so far",
                            self.label, self.limit, self.dropped)
            return
        self.queue.append(delivery)
        self.wake.set()


class Webhooks:
    """The webhook senders of one service; ``start``/``stop`` on the loop."""

    def __init__(self, service: Any, config: WebhooksConfig) -> None:
        self.service = service
        self.config = config
        self.targets = [Target(url, config.queue) for url in config.urls]
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._prefix = os.urandom(6).hex()  # delivery ids are unique across restarts too

    def _on_event(self, cid: str, event: Event) -> None:
        delivery = Delivery(cid, event, f"{self._prefix}-{next(self._ids)}")
        for target in self.targets:
            target.offer(delivery)

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._tasks = [asyncio.create_task(self._send_loop(t), name=f"webhook {t.label}")
                       for t in self.targets]
        self.service.event_listeners.append(self._on_event)

    async def stop(self) -> None:
        """Stop listening and sending; what is still queued is lost (not persisted)."""
        if self._on_event in self.service.event_listeners:
            self.service.event_listeners.remove(self._on_event)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        lost = sum(len(t.queue) for t in self.targets)
        if lost:
            log.warning("webhooks stopped with %d undelivered events (not persisted)", lost)
        for target in self.targets:
            target.queue.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one sender per URL ---------------------------------------------------------------

    async def _send_loop(self, target: Target) -> None:
        while True:
            if not target.queue:
                target.wake.clear()
                await target.wake.wait()
                continue
            delivery = target.queue[0]
            await self._deliver(target, delivery)
            target.queue.popleft()

    async def _deliver(self, target: Target, delivery: Delivery) -> None:
        """Attempts until delivered, rejected or given up."""
        config = self.config
        for attempt in range(1, config.max_attempts + 1):
            status, retry_after, problem = await self._post(target, delivery)
            if status is not None and 200 <= status < 300:
                target.delivered += 1
                if target.failing:
                    target.failing = False
                    log.info("webhook %s: delivering again", target.label)
                return
            if status is not None and status < 500 and status not in RETRY_STATUSES:
                target.rejected += 1
                if _worth_logging(target.rejected):
                    log.warning("webhook %s: event %s rejected with HTTP %d, not retried "
                                "(%d rejected so far)", target.label, delivery.id, status,
                                target.rejected)
                return
            target.failed_attempts += 1
            if not target.failing:
                target.failing = True
                log.warning("webhook %s: delivery failing (%s), retrying", target.label,
                            problem)
            if attempt == config.max_attempts:
                break
            delay = min(config.backoff_max, config.backoff_base * 2 ** (attempt - 1))
            if retry_after is not None:
                delay = min(config.backoff_max, max(delay, retry_after))
            await asyncio.sleep(delay)
        target.gave_up += 1
        log.warning("webhook %s: event %s given up after %d attempts (%s)", target.label,
                    delivery.id, config.max_attempts, problem)

    async def _post(self, target: Target,
                    delivery: Delivery) -> tuple[int | None, float | None, str]:
        """(status or None, Retry-After seconds or None, what went wrong)."""
        assert self._session is not None
        body = delivery.body
        headers = {
            "Content-Type": "application/json",
            "X-Fleetgate-Connector": delivery.cid,
            "X-Fleetgate-Event": str(delivery.event.get("type")),
            "X-Fleetgate-Delivery": delivery.id,
        }
        if self.config.secret:
            digest = hmac.new(self.config.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Fleetgate-Signature"] = f"sha256={digest}"
        try:
            async with self._session.post(target.url, data=body, headers=headers,
                                          allow_redirects=False) as resp:
                await resp.read()  # the connection is reused only once the body is read
                retry_after = resp.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.isdigit() else None
                return resp.status, wait, f"HTTP {resp.status}"
        except TimeoutError:
            return None, None, f"no answer within {self.config.timeout:g} s"
        except aiohttp.ClientError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # keep the sender alive; it is a bug, so with its traceback
            log.exception("webhook %s: unexpected error", target.label)
            return None, None, repr(exc)


WEBHOOKS_KEY: web.AppKey[Webhooks | None] = web.AppKey("webhooks", object)


def setup(app: web.Application, service: Any, config: WebhooksConfig | None) -> None:
    """Webhooks for ``service``, started and stopped with the app (its startup and cleanup:
    ``runner.setup()`` / ``runner.cleanup()``); ``config`` None or without URLs: off."""
    if config is None or not config.urls:
        app[WEBHOOKS_KEY] = None
        return
    hooks = Webhooks(service, config)
    app[WEBHOOKS_KEY] = hooks

    async def start(app: web.Application) -> None:
        await hooks.start()

    async def stop(app: web.Application) -> None:
        await hooks.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
