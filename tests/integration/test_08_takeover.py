"""Client takeover (MQTT-3.1.4-2): a CONNECT with a client id already connected closes the older
connection (reason ``duplicate_connection``) and the new one continues the session."""

from __future__ import annotations

from broker.mqtt.packets import Pingreq, Pingresp, Puback, Publish
from tests.conftest import RunningBroker
from tests.rawclient import connected


def test_second_connect_closes_first(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.4-2: the existing client with the same id is disconnected."""
    b = mqtt_broker
    with connected(b.host, b.port, "dup") as first, connected(b.host, b.port, "dup") as second:
        first.expect_closed()
        second.send(Pingreq())
        second.expect(Pingresp())
        assert b.close_reason_count("duplicate_connection") == 1
        assert b.call(lambda: len(b.broker.clients)) == 1


def test_persistent_session_handed_over(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.4-2 with 3.2.2-2: the new CleanSession=0 connection resumes the session
    (session present 1) and its subscriptions deliver on the new connection."""
    b = mqtt_broker
    with connected(b.host, b.port, "dev", clean=False) as first:
        first.subscribe("t/#", 1)
        with connected(b.host, b.port, "dev", clean=False, session_present=True) as second, \
                connected(b.host, b.port, "pub") as pub:
            first.expect_closed()
            pub.publish("t/1", b"to-new", 1, packet_id=1)
            pub.expect(Puback(1))
            got = second.recv()
            assert isinstance(got, Publish) and (got.topic, got.qos) == ("t/1", 1)
            second.send(Puback(got.packet_id))
            b.wait(lambda: not b.broker.sessions.get("dev").inflight)


def test_takeover_with_clean_session_starts_fresh(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-6: a takeover with CleanSession=1 discards the old session's subscriptions."""
    b = mqtt_broker
    with connected(b.host, b.port, "dev", clean=False) as first:
        first.subscribe("t/#", 1)
        with connected(b.host, b.port, "dev", clean=True, session_present=False) as second, \
                connected(b.host, b.port, "pub") as pub:
            first.expect_closed()
            pub.publish("t/1", b"nobody", 1, packet_id=1)
            pub.expect(Puback(1))
            second.expect_silence(0.2)
            assert b.call(lambda: len(b.broker.tree)) == 0


def test_takeover_redelivers_inflight(mqtt_broker: RunningBroker) -> None:
    """MQTT-4.4.0-1: messages unacknowledged on the connection that was taken over are resent
    (DUP=1, same packet identifier) on the new one."""
    b = mqtt_broker
    with connected(b.host, b.port, "dev", clean=False) as first, \
            connected(b.host, b.port, "pub") as pub:
        first.subscribe("t/#", 1)
        pub.publish("t/1", b"unacked", 1, packet_id=1)
        pub.expect(Puback(1))
        original = first.recv()
        assert isinstance(original, Publish) and not original.dup
        with connected(b.host, b.port, "dev", clean=False, session_present=True) as second:
            first.expect_closed()
            again = second.recv()
            assert isinstance(again, Publish)
            assert (again.payload, again.packet_id, again.dup) == (
                b"unacked", original.packet_id, True)
