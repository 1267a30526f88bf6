"""Session state (section 4.1): persistent sessions, offline queues and redelivery (4.4)."""

from __future__ import annotations

from broker.mqtt.packets import Disconnect, Puback, Pubcomp, Publish, Pubrec, Pubrel
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected


def go_offline(b: RunningBroker, client: RawClient, client_id: str, clean_end: bool = True) -> None:
    """End a connection (DISCONNECT, or an abrupt close) and wait until the broker saw it."""
    if clean_end:
        client.send(Disconnect())
    client.close()
    b.offline(client_id)


def publish_all(b: RunningBroker, messages: list[tuple[str, bytes, int]]) -> None:
    with connected(b.host, b.port, "pub") as pub:
        for i, (topic, payload, qos) in enumerate(messages, 1):
            pub.publish(topic, payload, qos, packet_id=i if qos else 0)
            if qos == 1:
                pub.expect(Puback(i))
            elif qos == 2:
                pub.expect(Pubrec(i))
                pub.send(Pubrel(i))
                pub.expect(Pubcomp(i))


def recv_publish(client: RawClient) -> Publish:
    got = client.recv()
    assert isinstance(got, Publish), got
    return got


def test_persistent_session_queues_offline(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-4/5: a CleanSession=0 session keeps its subscriptions while offline and
    queues QoS 1/2 messages (not QoS 0), delivered on reconnect in order; MQTT-3.2.2-2: session
    present is 1."""
    b = mqtt_broker
    sub = connected(b.host, b.port, "ps", clean=False)
    sub.subscribe("s/#", 2)
    go_offline(b, sub, "ps")
    publish_all(b, [("s/1", b"one", 1), ("s/0", b"zero", 0), ("s/2", b"two", 2),
                    ("s/3", b"three", 1)])
    with connected(b.host, b.port, "ps", clean=False, session_present=True) as again:
        got = [recv_publish(again) for _ in range(3)]
        assert [(p.topic, p.qos, p.dup) for p in got] == [
            ("s/1", 1, False), ("s/2", 2, False), ("s/3", 1, False)]
        again.expect_silence(0.2)  # the QoS 0 message was not queued (MQTT-3.1.2-5)


def test_clean_session_discards(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-6: CleanSession=1 discards the previous session (session present 0,
    MQTT-3.2.2-1) and the session ends with the connection."""
    b = mqtt_broker
    sub = connected(b.host, b.port, "cs", clean=False)
    sub.subscribe("c/#", 1)
    go_offline(b, sub, "cs")
    sub = connected(b.host, b.port, "cs", clean=True, session_present=False)
    go_offline(b, sub, "cs")
    assert b.call(lambda: b.broker.sessions.get("cs")) is None
    assert b.call(lambda: len(b.broker.tree)) == 0
    publish_all(b, [("c/1", b"lost", 1)])
    with connected(b.host, b.port, "cs", clean=False, session_present=False) as again:
        again.expect_silence(0.2)


def test_unacked_redelivered_with_dup(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.4.0-1 / 3.3.1-1: on reconnect unacknowledged PUBLISH packets are resent with DUP=1,
    the same packet identifiers, in the original order (MQTT-4.6.0-1); a QoS 2 message already
    PUBRECed is resent as PUBREL, not as PUBLISH (MQTT-4.3.3-1)."""
    b = mqtt_broker
    sub = connected(b.host, b.port, "rd", clean=False)
    sub.subscribe("r/#", 2)
    publish_all(b, [("r/a", b"a", 1), ("r/b", b"b", 2), ("r/c", b"c", 1), ("r/d", b"d", 2)])
    first = [recv_publish(sub) for _ in range(4)]
    sub.send(Pubrec(first[3].packet_id))  # r/d moves on to awaiting PUBCOMP
    sub.expect(Pubrel(first[3].packet_id))
    go_offline(b, sub, "rd", clean_end=False)
    with connected(b.host, b.port, "rd", clean=False, session_present=True) as again:
        resent = [recv_publish(again) for _ in range(3)]
        assert [(p.topic, p.packet_id, p.qos, p.dup) for p in resent] == [
            (p.topic, p.packet_id, p.qos, True) for p in first[:3]]
        again.expect(Pubrel(first[3].packet_id))
        again.send(Puback(resent[0].packet_id))
        again.send(Pubrec(resent[1].packet_id))
        again.expect(Pubrel(resent[1].packet_id))
        again.send(Pubcomp(resent[1].packet_id))
        again.send(Puback(resent[2].packet_id))
        again.send(Pubcomp(first[3].packet_id))
        b.wait(lambda: not b.broker.sessions.get("rd").inflight)
        again.expect_silence(0.1)


def test_max_queued_messages(broker_factory: BrokerFactory) -> None:
    """max_queued_messages: an offline session queues at most that many messages; the rest are
    dropped and counted in stats.messages_dropped; the first ones are kept."""
    b = broker_factory(max_queued_messages=3)
    sub = connected(b.host, b.port, "mq", clean=False)
    sub.subscribe("q", 1)
    go_offline(b, sub, "mq")
    publish_all(b, [("q", b"%d" % i, 1) for i in range(5)])
    assert b.call(lambda: b.broker.stats.messages_dropped) == 2
    with connected(b.host, b.port, "mq", clean=False, session_present=True) as again:
        got = [recv_publish(again) for _ in range(3)]
        assert [p.payload for p in got] == [b"0", b"1", b"2"]
        again.expect_silence(0.2)


def test_qos0_not_queued_offline(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-5: QoS 0 messages for an offline session are not stored (a QoS 1 one is)."""
    b = mqtt_broker
    sub = connected(b.host, b.port, "z", clean=False)
    sub.subscribe("z", 1)
    go_offline(b, sub, "z")
    publish_all(b, [("z", b"zero", 0)])
    assert b.call(lambda: len(b.broker.sessions.get("z").queue)) == 0
    publish_all(b, [("z", b"one", 1)])
    with connected(b.host, b.port, "z", clean=False, session_present=True) as again:
        assert recv_publish(again).payload == b"one"
        again.expect_silence(0.2)
