"""Keepalive (MQTT-3.1.2-24, 3.12.4-1): silence beyond 1.5x the keepalive closes the connection.

The broker's deadline wheel has one-second buckets, so a 1.5 s deadline closes within ~3 s.
"""

from __future__ import annotations

import time

from broker.mqtt.packets import Pingreq, Pingresp
from tests.conftest import BrokerFactory
from tests.rawclient import connected


def test_keepalive_expiry(broker_factory: BrokerFactory) -> None:
    """MQTT-3.1.2-24: keepalive 1 and no traffic → closed after 1.5 s (idle_timeout)."""
    b = broker_factory(connect_timeout=0.5)
    with connected(b.host, b.port, "ka", keepalive=1) as client:
        started = time.monotonic()
        client.expect_closed(timeout=4.0)
        elapsed = time.monotonic() - started
        assert 1.4 <= elapsed <= 3.5, elapsed
    assert b.close_reason_count("idle_timeout") == 1


def test_keepalive_shorter_than_connect_timeout(broker_factory: BrokerFactory) -> None:
    """MQTT-3.1.2-24 with the default 5 s connect_timeout: a 1 s keepalive is still enforced at
    1.5 s, not only when the CONNECT deadline comes round."""
    b = broker_factory()
    with connected(b.host, b.port, "ka", keepalive=1) as client:
        started = time.monotonic()
        client.expect_closed(timeout=3.5)
        assert time.monotonic() - started >= 1.4


def test_pingreq_keeps_connection_open(broker_factory: BrokerFactory) -> None:
    """MQTT-3.12.4-1: PINGREQ is answered by PINGRESP, and traffic resets the keepalive timer."""
    b = broker_factory(connect_timeout=0.5)
    with connected(b.host, b.port, "ping", keepalive=1) as client:
        started = time.monotonic()
        while time.monotonic() - started < 3.5:  # well past 1.5 s and two wheel turns
            client.send(Pingreq())
            client.expect(Pingresp())
            client.expect_silence(0.5)  # fails on a close (Closed) as well as on any packet
    assert b.close_reason_count("idle_timeout") == 0


def test_default_keepalive_applied(broker_factory: BrokerFactory) -> None:
    """A client keepalive of 0 takes mqtt.default_keepalive (here 1 s → closed within ~3 s)."""
    b = broker_factory(connect_timeout=0.5, default_keepalive=1)
    with connected(b.host, b.port, "zero", keepalive=0) as client:
        started = time.monotonic()
        client.expect_closed(timeout=4.0)
        assert time.monotonic() - started >= 1.4
    assert b.close_reason_count("idle_timeout") == 1


def test_default_keepalive_zero_means_no_timeout(broker_factory: BrokerFactory) -> None:
    """MQTT-3.1.2-24 (keepalive 0 turns the mechanism off) with default_keepalive=0."""
    b = broker_factory(connect_timeout=0.5, default_keepalive=0)
    with connected(b.host, b.port, "forever", keepalive=0) as client:
        client.expect_silence(3.0)
        client.send(Pingreq())
        client.expect(Pingresp())
    assert b.close_reason_count("idle_timeout") == 0
