"""broker/gateway/events.py: event objects of connector-spec §10 and the events.types switch."""

from __future__ import annotations

import pytest

from broker.gateway import events as ev


def test_common_shape() -> None:
    e = ev.connect("d1", timestamp=5, protocol="mqtt", ip="1.2.3.4", connection_id="c")
    assert e == {"type": "connect", "identity": "d1", "protocol": "mqtt", "ip": "1.2.3.4",
                 "timestamp": 5, "connection_id": "c", "payload": None, "tags": []}


def test_payloads_per_type() -> None:
    assert ev.data_in("d", [(1, {"a": 1}), (2, {"a": 2})], timestamp=3)["payload"] == [
        {"timestamp": 1, "values": {"a": 1}}, {"timestamp": 2, "values": {"a": 2}}]
    assert ev.data_out("d", "a", "v", 7, timestamp=8)["payload"] == [
        {"timestamp": 7, "values": {"a": "v"}}]
    p = ev.provisioned("d", "token", timestamp=1)
    assert p["payload"] is None and p["auth"] == {"type": "token"}
    assert ev.disconnect("d", "idle_timeout", timestamp=1)["reason"] == "idle_timeout"
    assert ev.disconnect("d", timestamp=1)["reason"] == "normal"
    assert ev.publish("d", "t/x", "hi", timestamp=1)["payload"] == {"topic": "t/x",
                                                                   "payload": "hi"}
    assert ev.content_in("d", "fw", "application/octet-stream", 3, timestamp=1)["payload"] == {
        "id": "fw", "type": "application/octet-stream", "length": 3}
    assert ev.deleted("d", timestamp=1)["payload"] is None
    assert ev.expired("d", timestamp=1)["type"] == "expired"
    with pytest.raises(ValueError):
        ev.make_event("bogus", "d", timestamp=1)


def test_enabled_by_settings() -> None:
    settings = {"events": {"types": ["connect"]}}
    assert ev.enabled(settings, "connect")
    assert not ev.enabled(settings, "data_in")
