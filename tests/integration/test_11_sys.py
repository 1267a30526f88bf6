"""``$SYS/broker/…`` statistics, published every mqtt.sys_interval (retained, QoS 0)."""

from __future__ import annotations

import time

from broker import __version__
from broker.mqtt.packets import Publish
from tests.conftest import BrokerFactory
from tests.rawclient import RawClient, connected


def collect_until(client: RawClient, done: dict[str, bytes], want: dict[str, bytes | None],
                  timeout: float = 3.0) -> None:
    """Read $SYS messages into ``done`` until every topic of ``want`` was seen with the given
    payload (None: any payload)."""
    deadline = time.monotonic() + timeout
    while True:
        if all(t in done and (p is None or done[t] == p) for t, p in want.items()):
            return
        got = client.recv(max(deadline - time.monotonic(), 0.001))
        assert isinstance(got, Publish) and got.topic.startswith("$SYS/broker/"), got
        assert got.qos == 0
        done[got.topic] = got.payload


def test_sys_topics(broker_factory: BrokerFactory) -> None:
    """$SYS/broker/# gives version, uptime and client counts; a new subscription gets the
    current values retained (RETAIN=1, MQTT-3.3.1-6) and updates follow every interval."""
    b = broker_factory(sys_interval=0.2)
    with connected(b.host, b.port, "sys") as sys:
        sys.subscribe("$SYS/broker/#", 0)
        first = sys.recv()
        assert isinstance(first, Publish) and first.retain
        seen = {first.topic: first.payload}
        collect_until(sys, seen, {
            "$SYS/broker/version": f"fleetgate {__version__}".encode(),
            "$SYS/broker/uptime": None,
            "$SYS/broker/clients/connected": b"1",
            "$SYS/broker/messages/received": None,
            "$SYS/broker/subscriptions/count": b"1",
        })
        with connected(b.host, b.port, "second"):
            collect_until(sys, seen, {"$SYS/broker/clients/connected": b"2"})
