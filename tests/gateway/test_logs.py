"""broker/gateway/logs.py: bounded rings, filters and live subscribers of connector-spec §8."""

from __future__ import annotations

import asyncio

import pytest

from broker.gateway.logs import DEBUG_REASONS, ConnectorLogs, Filter, Logs


def test_entry_shape_and_bound() -> None:
    logs = ConnectorLogs(capacity=3)
    for i in range(5):
        logs.event(i, "connect", identity=f"d{i}", ip="1.1.1.1", protocol="mqtt",
                   connection_id="c", detail=None)
    ring = logs.ring("event")
    assert len(ring) == 3
    assert [e["identity"] for e in ring] == ["d2", "d3", "d4"]
    assert set(ring.entries[0]) == {"timestamp_us", "identity", "ip", "protocol", "type",
                                    "connection_id", "detail"}


def test_default_capacity_per_connector() -> None:
    logs = Logs()
    assert logs["a"].ring("debug").entries.maxlen == 10_000
    assert logs["a"] is logs["a"] and logs["a"] is not logs["b"]


def test_filters() -> None:
    logs = ConnectorLogs()
    logs.debug(1, "bad_credentials", identity="a", ip="10.0.0.1")
    logs.debug(2, "idle_timeout", identity="b", ip="10.0.0.2")
    logs.debug(3, "bad_credentials", identity="b", ip="10.0.0.1")
    ring = logs.ring("debug")
    assert [e["timestamp_us"] for e in ring.query(Filter(ip="10.0.0.1"))] == [1, 3]
    assert [e["timestamp_us"] for e in ring.query(Filter(identity="b"))] == [2, 3]
    assert [e["timestamp_us"] for e in ring.query(Filter(type="idle_timeout"))] == [2]
    assert [e["timestamp_us"] for e in ring.query(Filter(since=2))] == [2, 3]
    assert [e["timestamp_us"] for e in ring.query(Filter(), limit=1)] == [3]


def test_debug_reasons_of_the_spec() -> None:
    for reason in ("idle_timeout", "not_authenticated", "duplicate_connection",
                   "presenter_identity_disabled", "ssl_closed", "ip_not_allowed"):
        assert reason in DEBUG_REASONS
    with pytest.raises(ValueError):
        ConnectorLogs().debug(1, "typo_reason")
    with pytest.raises(ValueError):
        ConnectorLogs().ring("other")


def test_callback_subscriber_filtered_and_failing_one_dropped() -> None:
    ring = ConnectorLogs().ring("event")
    seen: list[int] = []
    dropped: list[object] = []
    ring.subscribe(Filter(identity="a"), callback=lambda e: seen.append(e["timestamp_us"]))

    def broken(entry: object) -> None:
        raise RuntimeError("boom")

    sub = ring.subscribe(Filter(), callback=broken, on_drop=dropped.append)
    for ts, who in ((1, "a"), (2, "b"), (3, "a")):
        ring.append(ConnectorLogs.entry(ts, "connect", identity=who))
    assert seen == [1, 3]
    assert sub.dropped and dropped == [sub]


def test_slow_queue_subscriber_dropped_never_blocks() -> None:
    ring = ConnectorLogs().ring("debug")
    queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=2)  # type: ignore[type-arg]
    fast: asyncio.Queue[dict] = asyncio.Queue()  # type: ignore[type-arg]
    slow = ring.subscribe(Filter(), queue=queue)
    ring.subscribe(Filter(), queue=fast)
    for ts in range(5):
        ring.append(ConnectorLogs.entry(ts, "idle_timeout"))
    assert slow.dropped and queue.qsize() == 2
    assert fast.qsize() == 5  # the others keep receiving
    with pytest.raises(ValueError):
        ring.subscribe(Filter())


def test_close_unsubscribes() -> None:
    ring = ConnectorLogs().ring("event")
    seen: list[object] = []
    sub = ring.subscribe(Filter(), callback=seen.append)
    sub.close()
    ring.append(ConnectorLogs.entry(1, "connect"))
    assert seen == []
