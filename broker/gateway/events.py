"""Events to the application (connector-spec §10).

Event object: ``{type, identity, protocol, ip, timestamp (µs), connection_id, payload, tags}``;
per type the payload is:

    data_in      [{timestamp, values:{alias: value}}]   (a batch gives one event, many entries)
    data_out     [{timestamp, values:{alias: set_value}}]
    provisioned  null, plus ``auth: {type}``
    connect      null
    disconnect   null, plus ``reason`` (a debug reason or ``normal``)
    publish      {topic, payload}
    content_in   {id, type, length}
    deleted, expired  null

``events.types`` in the connector settings (§2.8) selects which types are emitted at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EVENT_TYPES = ("connect", "content_in", "data_in", "data_out", "deleted", "disconnect",
               "expired", "provisioned", "publish")

Event = dict[str, Any]


def enabled(settings: Mapping[str, Any], event_type: str) -> bool:
    return event_type in settings["events"]["types"]


def make_event(event_type: str, identity: str, *, timestamp: int, protocol: str | None = None,
               ip: str | None = None, connection_id: str | None = None, payload: Any = None,
               tags: list[dict[str, str]] | None = None, **extra: Any) -> Event:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event: Event = {"type": event_type, "identity": identity, "protocol": protocol, "ip": ip,
                    "timestamp": timestamp, "connection_id": connection_id, "payload": payload,
                    "tags": tags or []}
    event.update(extra)
    return event


def data_in(identity: str, entries: list[tuple[int, Mapping[str, Any]]], **ctx: Any) -> Event:
    """One event for a write or a whole ``$resource.batch``; ``entries`` are (µs, values)."""
    payload = [{"timestamp": ts, "values": dict(values)} for ts, values in entries]
    return make_event("data_in", identity, payload=payload, **ctx)


def data_out(identity: str, alias: str, value: Any, set_timestamp: int, **ctx: Any) -> Event:
    return make_event("data_out", identity,
                      payload=[{"timestamp": set_timestamp, "values": {alias: value}}], **ctx)


def provisioned(identity: str, auth_type: str, **ctx: Any) -> Event:
    return make_event("provisioned", identity, auth={"type": auth_type}, **ctx)


def connect(identity: str, **ctx: Any) -> Event:
    return make_event("connect", identity, **ctx)


def disconnect(identity: str, reason: str = "normal", **ctx: Any) -> Event:
    return make_event("disconnect", identity, reason=reason, **ctx)


def publish(identity: str, topic: str, payload: str, **ctx: Any) -> Event:
    return make_event("publish", identity, payload={"topic": topic, "payload": payload}, **ctx)


def content_in(identity: str, content_id: str, content_type: str, length: int,
               **ctx: Any) -> Event:
    return make_event("content_in", identity,
                      payload={"id": content_id, "type": content_type, "length": length}, **ctx)


def deleted(identity: str, **ctx: Any) -> Event:
    return make_event("deleted", identity, **ctx)


def expired(identity: str, **ctx: Any) -> Event:
    return make_event("expired", identity, **ctx)
