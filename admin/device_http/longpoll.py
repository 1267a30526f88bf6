"""Long polling (connector-spec §6.5): ``GET /onep:v1/stack/alias?<alias>`` with
``Request-Timeout: <ms>``.

- ``Request-Timeout`` is an integer of milliseconds, at most 300 000: a larger value is clamped
  to 300 000 (a client asking for more still gets a useful poll); anything else is 400
  ``invalid_request_timeout``.
- ``If-Modified-Since`` is seconds since the epoch (an integer or a decimal fraction) or an
  HTTP-date; anything else is 400 ``invalid_if_modified_since``. Without it, any pending value
  counts.
- The answer is immediate (200) if a listed alias has a *pending* set value (§4.2) newer than
  ``If-Modified-Since``: the pending ones, form-encoded, and ``Last-Modified`` (the newest
  value's set time). Otherwise the request waits until the cloud sets one of its aliases (the
  device's own writes never wake it: only ``setIdentityState`` calls the set listeners), then
  200 likewise; or until the timeout: 304.
- A new poll by the same identity on an alias another poll waits for ends that older poll at
  once with 304 (§6.5). An alias that is not a defined resource is ignored; if none of the
  listed aliases is defined the answer is 404 ``not_found``.
- A set value delivered by a poll emits a ``data_out`` event (§10).

One ``LongPolls`` per application holds every waiting poll in a dict keyed by (connector,
identity, alias), so a cloud set wakes its polls in O(aliases set); each poll is a future and a
``loop.call_later`` timer, no task or coroutine of its own (10 000 waiting polls cost little).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from broker.gateway import events
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service

MAX_TIMEOUT_MS = 300_000
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)

Key = tuple[str, str, str]


def request_timeout(header: str) -> float:
    """Seconds to wait for a ``Request-Timeout`` header (ms, clamped to 300 000)."""
    value = header.strip()
    if not value.isascii() or not value.isdigit():
        raise ServiceError(400, "invalid_request_timeout",
                           "Request-Timeout must be a number of milliseconds")
    return min(int(value), MAX_TIMEOUT_MS) / 1000


def if_modified_since(header: str | None) -> int | None:
    """µs epoch time a pending value must be newer than (None: any value)."""
    if header is None:
        return None
    value = header.strip()
    if _SECONDS.fullmatch(value):
        return int(float(value) * 1_000_000)
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        date = None
    if date is None or date.tzinfo is None:
        raise ServiceError(400, "invalid_if_modified_since",
                           "If-Modified-Since must be seconds since the epoch or an HTTP-date")
    # An HTTP-date has whole seconds (a Last-Modified sent back): values set within that
    # second count as seen, or a client echoing it would get the same value again at once.
    return int(date.timestamp()) * 1_000_000 + 999_999


class Poll:
    """One waiting poll: resolved with the values that woke it ({} on timeout/supersede)."""

    __slots__ = ("future", "keys", "values", "timer")

    def __init__(self, future: asyncio.Future[None], keys: list[Key]) -> None:
        self.future = future
        self.keys = keys
        self.values: dict[str, tuple[Any, int]] = {}
        self.timer: asyncio.TimerHandle | None = None


class LongPolls:
    """Every waiting poll of one device HTTP application, woken by the service's cloud sets."""

    def __init__(self, service: Device2Service) -> None:
        self.service = service
        self.waiting: dict[Key, Poll] = {}
        service.set_listeners.append(self.on_set)

    def close(self) -> None:
        """Stop listening; every waiting poll answers 304 now (the server is stopping)."""
        if self.on_set in self.service.set_listeners:
            self.service.set_listeners.remove(self.on_set)
        for poll in list(self.waiting.values()):
            self.finish(poll)

    def wait(self, cid: str, identity: str, aliases: Iterable[str], timeout: float) -> Poll:
        """Register a poll on ``aliases``; an older poll of the identity on any of them ends."""
        loop = asyncio.get_running_loop()
        keys = [(cid, identity, alias) for alias in dict.fromkeys(aliases)]
        poll = Poll(loop.create_future(), keys)
        for key in keys:
            older = self.waiting.get(key)
            if older is not None:
                self.finish(older)  # superseded: 304
            self.waiting[key] = poll
        poll.timer = loop.call_later(timeout, self.finish, poll)
        return poll

    def finish(self, poll: Poll) -> None:
        """End ``poll`` (idempotent): unregister it, stop its timer, wake its request."""
        for key in poll.keys:
            if self.waiting.get(key) is poll:
                del self.waiting[key]
        if poll.timer is not None:
            poll.timer.cancel()
        if not poll.future.done():
            poll.future.set_result(None)

    def on_set(self, cid: str, identity: str, values: Mapping[str, Any], ts_us: int) -> None:
        """A ``set_listeners`` callback: a cloud set left ``values`` pending for the device."""
        woken: dict[int, Poll] = {}
        for alias, value in values.items():
            poll = self.waiting.get((cid, identity, alias))
            if poll is not None:
                poll.values[alias] = (value, ts_us)
                woken[id(poll)] = poll
        for poll in woken.values():
            self.finish(poll)

    def delivered(self, cid: str, identity: str, values: Mapping[str, tuple[Any, int]],
                  context: Mapping[str, Any]) -> None:
        """``data_out`` events for set values a poll hands to the device."""
        service = self.service
        now = service.clock()
        for alias, (value, set_ts) in values.items():
            service.emit(cid, events.data_out(identity, alias, value, set_ts, timestamp=now,
                                              **context))
