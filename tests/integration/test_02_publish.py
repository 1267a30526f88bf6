"""PUBLISH and its QoS 1/2 flows (sections 3.3-3.7, 4.3) between raw clients."""

from __future__ import annotations

import pytest

from broker.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected


def publish_and_complete(client: RawClient, topic: str, payload: bytes, qos: int,
                         packet_id: int = 1, retain: bool = False) -> None:
    """Publish as a client and finish the sender's side of the QoS flow."""
    client.publish(topic, payload, qos, retain, packet_id if qos else 0)
    if qos == 1:
        client.expect(Puback(packet_id))
    elif qos == 2:
        client.expect(Pubrec(packet_id))
        client.send(Pubrel(packet_id))
        client.expect(Pubcomp(packet_id))


def receive_and_complete(client: RawClient) -> Publish:
    """Receive one PUBLISH as a subscriber and finish the receiver's side of its QoS flow."""
    got = client.recv()
    assert isinstance(got, Publish), got
    if got.qos == 1:
        client.send(Puback(got.packet_id))
    elif got.qos == 2:
        client.send(Pubrec(got.packet_id))
        client.expect(Pubrel(got.packet_id))
        client.send(Pubcomp(got.packet_id))
    return got


@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_delivery_at_min_qos(mqtt_broker: RunningBroker, pub_qos: int, sub_qos: int) -> None:
    """MQTT-3.8.4-6 / 3.3.5: delivered at min(published QoS, granted QoS), with all acks."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        assert sub.subscribe("q/t", sub_qos) == [sub_qos]
        publish_and_complete(pub, "q/t", b"payload", pub_qos, packet_id=17)
        got = receive_and_complete(sub)
        assert (got.topic, got.payload, got.qos, got.retain, got.dup) == (
            "q/t", b"payload", min(pub_qos, sub_qos), False, False)
        if got.qos:
            assert got.packet_id != 0  # MQTT-2.3.1-1
        sub.expect_silence(0.1)
        # MQTT-4.3.2-2 / 4.3.3-2: the completed flows leave nothing in flight.
        b.wait(lambda: not b.broker.sessions.get("sub").inflight)
        assert b.call(lambda: not b.broker.sessions.get("pub").incoming_qos2)


def test_qos2_duplicate_before_pubrel(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.3.3-2: a QoS 2 PUBLISH sent again (DUP=1, same id) before PUBREL is delivered once;
    after PUBCOMP the packet identifier is free for a new message."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("d", 2)
        pub.publish("d", b"once", 2, packet_id=5)
        pub.expect(Pubrec(5))
        pub.publish("d", b"once", 2, packet_id=5, dup=True)
        pub.expect(Pubrec(5))
        assert receive_and_complete(sub).payload == b"once"
        sub.expect_silence(0.2)
        pub.send(Pubrel(5))
        pub.expect(Pubcomp(5))
        publish_and_complete(pub, "d", b"again", 2, packet_id=5)
        assert receive_and_complete(sub).payload == b"again"
        sub.expect_silence(0.1)


def test_qos2_pubrel_state_survives_reconnect(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.4.0-1 / 4.3.3-2: a persistent session keeps the QoS 2 packet identifiers awaiting
    PUBREL; the PUBLISH resent after reconnecting is not delivered again; PUBREL → PUBCOMP."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub:
        sub.subscribe("p", 2)
        pub = connected(b.host, b.port, "pub2", clean=False)
        pub.publish("p", b"exactly-once", 2, packet_id=9)
        pub.expect(Pubrec(9))
        pub.close()  # abruptly, no DISCONNECT
        assert receive_and_complete(sub).payload == b"exactly-once"
        b.offline("pub2")
        with connected(b.host, b.port, "pub2", clean=False, session_present=True) as again:
            again.publish("p", b"exactly-once", 2, packet_id=9, dup=True)
            again.expect(Pubrec(9))
            again.send(Pubrel(9))
            again.expect(Pubcomp(9))
            sub.expect_silence(0.3)


def test_outgoing_qos2_flow(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.3.3-1: to a subscriber the broker sends PUBLISH, answers PUBREC with PUBREL (same id)
    and ends the flow on PUBCOMP."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("o", 2)
        publish_and_complete(pub, "o", b"x", 2)
        got = sub.recv()
        assert isinstance(got, Publish) and got.qos == 2
        sub.send(Pubrec(got.packet_id))
        sub.expect(Pubrel(got.packet_id))
        assert b.call(lambda: len(b.broker.sessions.get("sub").inflight)) == 1
        sub.send(Pubcomp(got.packet_id))
        b.wait(lambda: not b.broker.sessions.get("sub").inflight)


def test_overlapping_subscriptions_one_copy(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.3.5-1: overlapping subscriptions deliver one copy at the highest granted QoS."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("a/#", 0, packet_id=1)
        sub.subscribe("a/+", 2, packet_id=2)
        sub.subscribe("a/b", 1, packet_id=3)
        publish_and_complete(pub, "a/b", b"one", 2)
        got = receive_and_complete(sub)
        assert (got.payload, got.qos) == (b"one", 2)
        sub.expect_silence(0.3)


def test_sys_publish_dropped(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.7.2-1: $SYS topics are the broker's; a client's PUBLISH there is acknowledged
    and dropped (neither delivered nor retained)."""
    b = mqtt_broker
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("$SYS/#", 1)
        pub.publish("$SYS/broker/version", b"evil", 1, retain=True, packet_id=3)
        pub.expect(Puback(3))
        sub.expect_silence(0.3)
        assert b.call(lambda: b.broker.retained.get("$SYS/broker/version")) is None


def test_max_inflight_window(broker_factory: BrokerFactory) -> None:
    """max_inflight: at most that many unacknowledged QoS 1 messages are outstanding to a
    subscriber; each PUBACK releases the next, in publish order (MQTT-4.6.0-6)."""
    b = broker_factory(max_inflight=2)
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("w", 1)
        for i in range(5):
            publish_and_complete(pub, "w", b"m%d" % i, 1, packet_id=i + 1)
        first = [sub.recv(), sub.recv()]
        assert [p.payload for p in first] == [b"m0", b"m1"]  # type: ignore[attr-defined]
        sub.expect_silence(0.3)
        for expected in (b"m2", b"m3", b"m4"):
            sub.send(Puback(first.pop(0).packet_id))  # type: ignore[attr-defined]
            got = sub.recv()
            assert isinstance(got, Publish) and got.payload == expected, got
            first.append(got)
            sub.expect_silence(0.05)
        for packet in first:
            sub.send(Puback(packet.packet_id))  # type: ignore[attr-defined]
        b.wait(lambda: not b.broker.sessions.get("sub").inflight)


def test_max_inflight_counts_qos2_until_pubcomp(broker_factory: BrokerFactory) -> None:
    """max_inflight with QoS 2: a message awaiting PUBCOMP still holds its slot (MQTT-4.3.3-1
    flow is not over at PUBREC); PUBCOMP releases the next message."""
    b = broker_factory(max_inflight=1)
    with connected(b.host, b.port, "sub") as sub, connected(b.host, b.port, "pub") as pub:
        sub.subscribe("w2", 2)
        publish_and_complete(pub, "w2", b"first", 2, packet_id=1)
        publish_and_complete(pub, "w2", b"second", 2, packet_id=2)
        first = sub.recv()
        assert isinstance(first, Publish) and first.payload == b"first"
        sub.send(Pubrec(first.packet_id))
        sub.expect(Pubrel(first.packet_id))
        sub.expect_silence(0.2)
        sub.send(Pubcomp(first.packet_id))
        assert receive_and_complete(sub).payload == b"second"
