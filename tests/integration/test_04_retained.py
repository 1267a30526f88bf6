"""Retained messages (section 3.3.1.3) end to end."""

from __future__ import annotations

from broker.mqtt.packets import Puback, Publish, Pubrec
from tests.conftest import RunningBroker
from tests.rawclient import RawClient, connected


def publish_retained(pub: RawClient, topic: str, payload: bytes, qos: int = 1,
                     packet_id: int = 1) -> None:
    pub.publish(topic, payload, qos, retain=True, packet_id=packet_id if qos else 0)
    if qos == 1:
        pub.expect(Puback(packet_id))


def recv_publish(client: RawClient) -> Publish:
    got = client.recv()
    assert isinstance(got, Publish), got
    return got


def test_retain_flag_new_vs_existing(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.3.1-6: a new subscription gets the retained message with RETAIN=1;
    MQTT-3.3.1-9: existing subscribers get the live message with RETAIN=0."""
    b = mqtt_broker
    with connected(b.host, b.port, "old") as old, connected(b.host, b.port, "p") as pub:
        old.subscribe("r/a", 0)
        publish_retained(pub, "r/a", b"v1")
        live = recv_publish(old)
        assert (live.payload, live.retain) == (b"v1", False)
        with connected(b.host, b.port, "new") as new:
            new.subscribe("r/a", 0)
            stored = recv_publish(new)
            assert (stored.topic, stored.payload, stored.retain) == ("r/a", b"v1", True)
            new.expect_silence(0.1)
        old.expect_silence(0.1)  # the new subscription does not resend to the old one


def test_retained_replaced(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.3.1-5: a retained PUBLISH replaces the topic's previous retained message."""
    b = mqtt_broker
    with connected(b.host, b.port, "p") as pub:
        publish_retained(pub, "r/a", b"first", packet_id=1)
        publish_retained(pub, "r/a", b"second", packet_id=2)
    with connected(b.host, b.port, "s") as sub:
        sub.subscribe("r/a", 1)
        got = recv_publish(sub)
        assert (got.payload, got.retain, got.qos) == (b"second", True, 1)
        sub.send(Puback(got.packet_id))
        sub.expect_silence(0.2)


def test_retained_cleared_by_empty_payload(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.3.1-10/11: a retained PUBLISH with an empty payload removes the retained message
    (and is itself not stored), but is delivered to existing subscribers as usual."""
    b = mqtt_broker
    with connected(b.host, b.port, "old") as old, connected(b.host, b.port, "p") as pub:
        old.subscribe("r/gone", 0)
        publish_retained(pub, "r/gone", b"here", packet_id=1)
        assert recv_publish(old).payload == b"here"
        assert b.call(lambda: len(b.broker.retained)) == 1
        publish_retained(pub, "r/gone", b"", packet_id=2)
        cleared = recv_publish(old)
        assert (cleared.payload, cleared.retain) == (b"", False)
        assert b.call(lambda: len(b.broker.retained)) == 0
    with connected(b.host, b.port, "s") as sub:
        sub.subscribe("r/#", 0)
        sub.expect_silence(0.3)


def test_retained_qos_downgraded(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.8.4-6: a retained QoS 2 message goes to a QoS 1 subscription at QoS 1, to a QoS 0
    subscription at QoS 0, and to a QoS 2 subscription at QoS 2."""
    b = mqtt_broker
    with connected(b.host, b.port, "p") as pub:
        pub.publish("r/q", b"two", 2, retain=True, packet_id=1)
        pub.expect(Pubrec(1))  # the message is routed and retained on PUBLISH (method B)
    for granted in (0, 1, 2):
        with connected(b.host, b.port, f"s{granted}") as sub:
            sub.subscribe("r/q", granted)
            got = recv_publish(sub)
            assert (got.payload, got.qos, got.retain) == (b"two", granted, True)


def test_retained_wildcard_lookup(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.3.1-6 with wildcards (4.7.1): every retained message whose topic the new filter
    matches is sent; '#' also matches the parent level."""
    b = mqtt_broker
    topics = ["w", "w/a", "w/b/c", "x/a", "x/b"]
    with connected(b.host, b.port, "p") as pub:
        for i, topic in enumerate(topics, 1):
            publish_retained(pub, topic, topic.encode(), packet_id=i)
    expected = {"w/#": {"w", "w/a", "w/b/c"}, "+/a": {"w/a", "x/a"}, "x/+": {"x/a", "x/b"},
                "#": set(topics), "w/b/+": {"w/b/c"}, "nothing/#": set()}
    for topic_filter, want in expected.items():
        with connected(b.host, b.port, "s") as sub:
            sub.subscribe(topic_filter, 0)
            got = set()
            for _ in want:
                packet = recv_publish(sub)
                assert packet.retain and packet.payload == packet.topic.encode()
                got.add(packet.topic)
            assert got == want, topic_filter
            sub.expect_silence(0.1)


def test_resubscribe_sends_retained_again(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.8.4-3: repeating a subscription resends the matching retained messages."""
    b = mqtt_broker
    with connected(b.host, b.port, "p") as pub:
        publish_retained(pub, "r/again", b"x")
    with connected(b.host, b.port, "s") as sub:
        sub.subscribe("r/again", 0, packet_id=1)
        assert recv_publish(sub).retain
        sub.subscribe("r/again", 0, packet_id=2)
        assert recv_publish(sub).retain
