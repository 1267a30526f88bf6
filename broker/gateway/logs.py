"""Event and debug logs (connector-spec §8): in memory, per connector, bounded, with live
subscribers.

Entry: ``{timestamp_us, identity, ip, protocol, type, connection_id, detail}``; in the debug log
``type`` is the debug reason (§8.2, e.g. ``idle_timeout``), in the event log the event kind
(``connect``, ``provision``, ``data_in`` …). Exosite keeps no history; we keep the last
``capacity`` entries (default 10 000) of each log so the console has something to show.

A subscriber is a callback or a bounded ``asyncio.Queue``. Appending never blocks: a queue that
is full, or a callback that raises, drops that subscriber (``dropped`` set, ``on_drop``
called) instead of slowing the device path.

Each ring numbers its entries (``appended``: the sequence number of the newest, from 1; live
streams use it as the SSE event id to resume from) and counts them by ``type`` (``counts``:
the debug reasons and event kinds that ``/metrics`` exposes).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

Entry = dict[str, Any]
Kind = Literal["event", "debug"]
KINDS: tuple[Kind, ...] = ("event", "debug")
DEFAULT_CAPACITY = 10_000

DEBUG_REASONS = frozenset({
    # connector-spec §8.2 [C 1]
    "idle_timeout", "not_authenticated", "duplicate_connection", "presenter_identity_disabled",
    "ssl_closed",
    # our additional reasons [I]
    "invalid_identity", "locked", "ip_not_allowed", "expired", "bad_credentials", "missing_sni",
    "tls_error", "invalid_topic", "invalid_value", "unsupported_qos", "message_too_large",
    "provision_disabled",
    # a client certificate before its notBefore (certificate mode, broker/gateway/certificates.py)
    "not_yet_valid",
    # an application's $set the service refused (unknown identity, resource not settable),
    # or a device write to an identity removed meanwhile: the ServiceError code
    "not_found", "not_settable",
    # an administrator closed the device (updateIdentity revoke / new credentials,
    # removeIdentity; a lock closes with "locked")
    "reprovision", "credentials_changed", "deleted",
    # the broker core's close and refusal reasons (docs/mqtt.md), for connections of a connector
    "protocol_error", "not_authorized", "identifier_rejected", "server_unavailable",
    "max_connections", "server_shutdown", "storage_error", "refused",
})


class Filter:
    def __init__(self, *, identity: str | None = None, ip: str | None = None,
                 type: str | None = None, since: int | None = None) -> None:
        self.identity, self.ip, self.type, self.since = identity, ip, type, since

    def __call__(self, entry: Entry) -> bool:
        return ((self.identity is None or entry["identity"] == self.identity)
                and (self.ip is None or entry["ip"] == self.ip)
                and (self.type is None or entry["type"] == self.type)
                and (self.since is None or entry["timestamp_us"] >= self.since))


class Subscription:
    def __init__(self, ring: LogRing, flt: Filter, callback: Callable[[Entry], None] | None,
                 queue: asyncio.Queue[Entry] | None,
                 on_drop: Callable[[Subscription], None] | None) -> None:
        self._ring = ring
        self.filter = flt
        self.callback = callback
        self.queue = queue
        self.on_drop = on_drop
        self.dropped = False

    def deliver(self, entry: Entry) -> None:
        try:
            if self.callback is not None:
                self.callback(entry)
            else:
                assert self.queue is not None
                self.queue.put_nowait(entry)
        except Exception:  # QueueFull or a failing callback: never let it block the log
            self.dropped = True
            self.close()
            if self.on_drop is not None:
                self.on_drop(self)

    def close(self) -> None:
        self._ring.unsubscribe(self)


class LogRing:
    """One bounded log with its subscribers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.entries: deque[Entry] = deque(maxlen=capacity)
        self._subscribers: list[Subscription] = []
        self.appended = 0  # entries ever appended: the newest one's sequence number
        self.counts: Counter[str] = Counter()  # entries ever appended, by type

    def append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.appended += 1
        self.counts[entry["type"]] += 1
        if not self._subscribers:
            return
        for sub in list(self._subscribers):
            if sub.filter(entry):
                sub.deliver(entry)

    def query(self, flt: Filter, limit: int | None = None) -> list[Entry]:
        """Matching entries, oldest first; with ``limit`` only the newest ``limit``."""
        found = [e for e in self.entries if flt(e)]
        return found[-limit:] if limit else found

    def numbered(self) -> Iterator[tuple[int, Entry]]:
        """The entries kept, oldest first, with their sequence numbers."""
        return enumerate(self.entries, self.appended - len(self.entries) + 1)

    def subscribe(self, flt: Filter, *, callback: Callable[[Entry], None] | None = None,
                  queue: asyncio.Queue[Entry] | None = None,
                  on_drop: Callable[[Subscription], None] | None = None) -> Subscription:
        if (callback is None) == (queue is None):
            raise ValueError("give exactly one of callback or queue")
        sub = Subscription(self, flt, callback, queue, on_drop)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


class ConnectorLogs:
    """The event log and the debug log of one connector."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.rings: dict[Kind, LogRing] = {k: LogRing(capacity) for k in KINDS}

    def ring(self, kind: str) -> LogRing:
        if kind not in KINDS:
            raise ValueError(f"log type must be one of {KINDS}")
        return self.rings[kind]  # type: ignore[index]

    @staticmethod
    def entry(timestamp_us: int, type: str, *, identity: str | None = None,
              ip: str | None = None, protocol: str | None = None,
              connection_id: str | None = None, detail: Any = None) -> Entry:
        return {"timestamp_us": timestamp_us, "identity": identity, "ip": ip,
                "protocol": protocol, "type": type, "connection_id": connection_id,
                "detail": detail}

    def event(self, timestamp_us: int, type: str, **fields: Any) -> Entry:
        entry = self.entry(timestamp_us, type, **fields)
        self.rings["event"].append(entry)
        return entry

    def debug(self, timestamp_us: int, reason: str, **fields: Any) -> Entry:
        if reason not in DEBUG_REASONS:
            raise ValueError(f"unknown debug reason {reason!r}")  # a typo, not a device's fault
        entry = self.entry(timestamp_us, reason, **fields)
        self.rings["debug"].append(entry)
        return entry


class Logs:
    """Logs of every connector, made on first use."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._by_connector: dict[str, ConnectorLogs] = {}

    def __getitem__(self, connector_id: str) -> ConnectorLogs:
        logs = self._by_connector.get(connector_id)
        if logs is None:
            logs = self._by_connector[connector_id] = ConnectorLogs(self.capacity)
        return logs

    def drop(self, connector_id: str) -> None:
        self._by_connector.pop(connector_id, None)

    def items(self) -> list[tuple[str, ConnectorLogs]]:
        """(connector id, logs) of every connector that has logged something (for metrics)."""
        return list(self._by_connector.items())
