"""The will message (MQTT-3.1.2-8..17, 3.14.4-3): published when a client vanishes without
DISCONNECT, discarded after one."""

from __future__ import annotations

import time

from broker.mqtt.packets import Disconnect, Puback, Publish
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected

WILL = {"will_topic": "will/dev", "will_payload": b"gone", "will_qos": 1}


def watcher(b: RunningBroker, qos: int = 2) -> RawClient:
    client = connected(b.host, b.port, "watcher")
    client.subscribe("will/#", qos)
    return client


def expect_will(client: RawClient, payload: bytes = b"gone", qos: int = 1,
                timeout: float | None = None) -> Publish:
    got = client.recv(timeout)
    assert isinstance(got, Publish), got
    assert (got.topic, got.payload, got.qos, got.retain) == ("will/dev", payload, qos, False)
    if got.qos == 1:
        client.send(Puback(got.packet_id))
    return got


def expect_no_will(b: RunningBroker, watch: RawClient) -> None:
    """Nothing arrives before a sentinel published after the client's end was processed."""
    with connected(b.host, b.port, "sentinel") as pub:
        pub.publish("will/sentinel", b"s")
        got = watch.recv()
        assert isinstance(got, Publish) and got.topic == "will/sentinel", got


def test_will_on_abrupt_close(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-8: a network close without DISCONNECT publishes the will."""
    b = mqtt_broker
    with watcher(b) as watch:
        client = connected(b.host, b.port, "dev", **WILL)
        client.close()
        expect_will(watch)


def test_will_on_keepalive_expiry(broker_factory: BrokerFactory) -> None:
    """MQTT-3.1.2-8 / 3.1.2-24: a keepalive timeout publishes the will."""
    b = broker_factory(connect_timeout=0.5)
    with watcher(b) as watch, connected(b.host, b.port, "dev", keepalive=1, **WILL) as client:
        started = time.monotonic()
        expect_will(watch, timeout=4.0)
        assert time.monotonic() - started >= 1.4
        client.expect_closed()
    assert b.close_reason_count("idle_timeout") == 1


def test_will_on_protocol_violation(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-8: a close for a protocol violation publishes the will."""
    b = mqtt_broker
    with watcher(b) as watch, connected(b.host, b.port, "dev", **WILL) as client:
        client.send(b"\xf0\x00")  # reserved packet type 15
        client.expect_closed()
        expect_will(watch)


def test_will_on_takeover(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.4-2 with 3.1.2-8: the connection closed by a takeover publishes its will."""
    b = mqtt_broker
    with watcher(b) as watch, connected(b.host, b.port, "dev", **WILL) as first, \
            connected(b.host, b.port, "dev") as second:
        first.expect_closed()
        expect_will(watch)
        second.expect_silence(0.1)


def test_no_will_after_disconnect(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-10 / 3.14.4-3: after DISCONNECT the will is discarded, not published."""
    b = mqtt_broker
    with watcher(b) as watch, connected(b.host, b.port, "dev", **WILL) as client:
        client.send(Disconnect())
        client.expect_closed()
        b.offline("dev")
        expect_no_will(b, watch)
    assert b.close_reason_count("normal") == 1


def test_will_qos_and_retain(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-14/16/17: the will is published at its QoS and, with Will Retain, retained;
    a later subscriber receives it with RETAIN=1."""
    b = mqtt_broker
    with watcher(b, qos=2) as watch:
        client = connected(b.host, b.port, "dev", will_topic="will/dev", will_payload=b"bye",
                           will_qos=2, will_retain=True)
        client.close()
        got = watch.recv()
        assert isinstance(got, Publish)
        assert (got.payload, got.qos, got.retain) == (b"bye", 2, False)
    with connected(b.host, b.port, "late") as late:
        late.subscribe("will/dev", 1)
        got = late.recv()
        assert isinstance(got, Publish)
        assert (got.payload, got.qos, got.retain) == (b"bye", 1, True)


def test_will_qos_downgraded_to_subscription(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.8.4-6: a QoS 1 will to a QoS 0 subscription arrives at QoS 0."""
    b = mqtt_broker
    with watcher(b, qos=0) as watch:
        connected(b.host, b.port, "dev", **WILL).close()
        expect_will(watch, qos=0)
