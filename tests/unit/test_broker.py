"""broker/core/broker.py and the packet handlers, through the sans-I/O path: bytes in, bytes out."""

from __future__ import annotations

import pytest

from broker.core.broker import Broker
from broker.core.connection import CLOSED, CONNECTED
from broker.mqtt import codec
from broker.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from broker.security.policy import PlainPolicy
from tests.sansio import Client, SansIO, each_connection  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("each_connection")


def subscribed(h: SansIO, client_id: str, topic_filter: str, qos: int = 0) -> Client:
    client = h.connect(client_id)
    client.send(Subscribe(1, [(topic_filter, qos)]))
    assert client.packets() == [Suback(1, [qos])]
    return client


# -- connect ------------------------------------------------------------------------------------


def test_connect_registers_client() -> None:
    """An accepted CONNECT answers CONNACK 0 and registers the client id and its session."""
    h = SansIO()
    client = h.open()
    client.send(Connect("c1", True, 30))
    assert client.packets() == [Connack(False, 0)]
    assert client.conn.state == CONNECTED
    assert h.broker.clients["c1"] is client.conn
    assert client.conn.keepalive == 45.0  # MQTT-3.1.2-24: enforced at 1.5x
    assert client.conn in h.broker.connections


def test_empty_client_id_gets_one_assigned() -> None:
    """A zero-length client id gets a unique server-assigned one (MQTT-3.1.3-6)."""
    h = SansIO()
    first, second = h.connect(""), h.connect("")
    assert first.conn.client_id and second.conn.client_id
    assert first.conn.client_id != second.conn.client_id


def test_first_packet_must_be_connect() -> None:
    """Any first packet other than CONNECT closes with protocol_error (MQTT-3.1.0-1)."""
    h = SansIO()
    client = h.open()
    client.send(Pingreq())
    assert client.packets() == []
    assert client.link.closed
    assert client.conn.close_reason == "protocol_error"
    assert h.broker.stats.close_reasons["protocol_error"] == 1
    assert client.conn not in h.broker.connections


def test_second_connect_closes() -> None:
    """A second CONNECT on a connection is a protocol violation (MQTT-3.1.0-2)."""
    h = SansIO()
    client = h.connect("c1")
    client.send(Connect("c1", True, 30))
    assert client.conn.state == CLOSED
    assert client.conn.close_reason == "protocol_error"
    assert "c1" not in h.broker.clients


def test_server_only_packet_from_client_closes() -> None:
    """A packet only a server sends (CONNACK) from a client closes its connection."""
    h = SansIO()
    client = h.connect("c1")
    client.send(Connack(False, 0))
    assert client.conn.close_reason == "protocol_error"


def test_duplicate_client_id_takes_over() -> None:
    """A CONNECT with a connected client id closes the older connection (MQTT-3.1.4-2)."""
    h = SansIO()
    old = h.connect("same")
    new = h.connect("same")
    assert old.link.closed
    assert old.conn.close_reason == "duplicate_connection"
    assert h.broker.clients["same"] is new.conn
    assert h.broker.stats.close_reasons["duplicate_connection"] == 1


def test_ping_and_disconnect() -> None:
    """PINGREQ is answered by PINGRESP; DISCONNECT closes with reason normal."""
    h = SansIO()
    client = h.connect("c1")
    client.send(Pingreq())
    assert client.packets() == [Pingresp()]
    client.send(Disconnect())
    assert client.link.closed
    assert h.broker.stats.close_reasons["normal"] == 1
    assert h.broker.connections == set()
    assert h.broker.clients == {}


# -- routing and acknowledgements ---------------------------------------------------------------


def test_qos1_publish_acked_and_routed() -> None:
    """A QoS 1 PUBLISH is answered with PUBACK and routed at min(published, granted) QoS."""
    h = SansIO()
    sub1 = subscribed(h, "s1", "a/+", 1)
    sub0 = subscribed(h, "s0", "a/#", 0)
    pub = h.connect("p")
    pub.send(Publish("a/b", b"hi", qos=1, packet_id=10))
    assert pub.packets() == [Puback(10)]
    assert sub1.packets() == [Publish("a/b", b"hi", 1, packet_id=1)]
    assert sub0.packets() == [Publish("a/b", b"hi", 0)]


def test_qos2_flow_routes_once() -> None:
    """Incoming QoS 2: PUBREC, a duplicate PUBLISH is not routed again, PUBREL gets PUBCOMP."""
    h = SansIO()
    sub = subscribed(h, "s", "t", 2)
    pub = h.connect("p")
    pub.send(Publish("t", b"x", qos=2, packet_id=5))
    assert pub.packets() == [Pubrec(5)]
    pub.send(Publish("t", b"x", qos=2, dup=True, packet_id=5))
    assert pub.packets() == [Pubrec(5)]
    assert sub.packets() == [Publish("t", b"x", 2, packet_id=1)]
    pub.send(Pubrel(5))
    assert pub.packets() == [Pubcomp(5)]
    sub.send(Pubrec(1))
    assert sub.packets() == [Pubrel(1)]
    sub.send(Pubcomp(1))
    assert sub.conn.session is not None and not sub.conn.session.inflight


def test_unsubscribe_stops_delivery() -> None:
    """After UNSUBSCRIBE (answered by UNSUBACK) the filter no longer matches."""
    h = SansIO()
    sub = subscribed(h, "s", "t")
    sub.send(Unsubscribe(2, ["t"]))
    assert sub.packets() == [Unsuback(2)]
    h.connect("p").send(Publish("t", b"x"))
    assert sub.packets() == []


def test_retained_sent_on_subscribe_and_persisted() -> None:
    """A retained message is stored and sent with RETAIN=1 to a later subscription."""
    h = SansIO()
    pub = h.connect("p")
    pub.send(Publish("r/1", b"kept", qos=1, retain=True, packet_id=1))
    sub = h.connect("s")
    sub.send(Subscribe(1, [("r/#", 1)]))
    assert sub.packets() == [Suback(1, [1]), Publish("r/1", b"kept", 1, retain=True, packet_id=1)]
    with h.broker.store.read() as txn:
        assert txn.get("retained", b"r/1") == b"\x01kept"
    restarted = Broker(h.config, PlainPolicy(h.config.mqtt), h.broker.store, h.scheduled.append)
    assert restarted.retained.get("r/1") is not None
    pub.send(Publish("r/1", b"", retain=True))
    with h.broker.store.read() as txn:
        assert txn.get("retained", b"r/1") is None


# -- write coalescing ---------------------------------------------------------------------------


def test_burst_reaches_subscriber_in_one_write() -> None:
    """Several messages to one subscriber in one loop turn arrive in exactly one Link.write."""
    h = SansIO()
    sub = subscribed(h, "s", "t/#", 1)
    pub = h.connect("p")
    writes_before = len(sub.link.writes)
    burst = b"".join(codec.encode_publish(f"t/{n}", b"x", 1, False, False, n + 1) for n in range(5))
    pub.send(burst)
    assert len(sub.link.writes) == writes_before + 1
    assert [p.packet_id for p in sub.packets()] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    assert pub.link.writes[-1] == b"".join(codec.encode_puback(n + 1) for n in range(5))


def test_output_waits_for_the_loop_turn() -> None:
    """Nothing is written before the scheduled flush runs, and one flush is scheduled per turn."""
    h = SansIO()
    sub = subscribed(h, "s", "t")
    pub = h.connect("p")
    before = len(sub.link.writes)
    pub.conn.data_received(codec.encode_publish("t", b"1") + codec.encode_publish("t", b"2"), 0.0)
    pub.conn.data_received(codec.encode_publish("t", b"3"), 0.0)
    assert len(sub.link.writes) == before
    assert len(h.scheduled) == 1
    h.run()
    assert len(sub.link.writes) == before + 1


def test_qos0_encoded_once_for_all_subscribers() -> None:
    """A QoS 0 message is encoded once: the very same bytes object goes to every subscriber."""
    h = SansIO()
    subs = [subscribed(h, f"s{n}", "t", 0) for n in range(3)]
    h.connect("p").send(Publish("t", b"x"))
    first = subs[0].link.writes[-1]
    assert first == codec.encode_publish("t", b"x")
    assert all(s.link.writes[-1] is first for s in subs)
    assert all(s.packets() == [Publish("t", b"x")] for s in subs)


# -- back-pressure ------------------------------------------------------------------------------


def test_paused_connection_drops_qos0_and_counts() -> None:
    """QoS 0 to a paused (slow) client is dropped and counted; QoS 1 waits in its session."""
    h = SansIO()
    slow = subscribed(h, "slow", "t", 1)
    fast = subscribed(h, "fast", "t", 0)
    slow.conn.pause_writing()
    pub = h.connect("p")
    pub.send(Publish("t", b"q0"))
    assert h.broker.stats.messages_dropped == 1
    assert slow.packets() == []
    assert fast.packets() == [Publish("t", b"q0")]
    pub.send(Publish("t", b"q1", qos=1, packet_id=1))
    assert slow.packets() == []
    assert h.broker.stats.messages_dropped == 1
    slow.conn.resume_writing()
    h.run()
    assert slow.packets() == [Publish("t", b"q1", 1, packet_id=1)]


# -- closing ------------------------------------------------------------------------------------


def test_will_published_on_abnormal_close_only() -> None:
    """The will goes out when a client vanishes, not after DISCONNECT (MQTT-3.14.4-3)."""
    h = SansIO()
    watcher = subscribed(h, "w", "will/#")
    gone = h.connect("gone", will_topic="will/gone", will_payload=b"bye")
    gone.lose()
    h.run()
    assert watcher.packets() == [Publish("will/gone", b"bye")]
    assert h.broker.stats.close_reasons["ssl_closed"] == 1
    polite = h.connect("polite", will_topic="will/polite", will_payload=b"bye")
    polite.send(Disconnect())
    assert watcher.packets() == []


def test_no_will_on_server_shutdown() -> None:
    """close_all closes everyone with server_shutdown and publishes no will."""
    h = SansIO()
    watcher = subscribed(h, "w", "will/#")
    h.connect("x", will_topic="will/x", will_payload=b"bye")
    h.broker.close_all()
    h.run()
    assert watcher.packets() == []
    assert h.broker.stats.close_reasons["server_shutdown"] == 2
    assert h.broker.connections == set()


def test_max_connections() -> None:
    """Connections beyond max_connections are closed with reason max_connections."""
    h = SansIO(max_connections=2)
    h.open()
    h.open()
    third = h.open()
    assert third.link.closed
    assert third.conn.close_reason == "max_connections"
    assert len(h.broker.connections) == 2


def test_oversize_packet_closes_with_message_too_large() -> None:
    """A packet announced beyond max_packet_size closes with message_too_large."""
    h = SansIO(max_packet_size=64)
    client = h.connect("c")
    client.send(codec.encode_publish("t", b"x" * 100))
    assert client.conn.close_reason == "message_too_large"
    assert h.broker.stats.close_reasons["message_too_large"] == 1


def test_clean_session_discarded_on_close() -> None:
    """A clean session and its subscriptions end with the connection (MQTT-3.1.2-6)."""
    h = SansIO()
    sub = subscribed(h, "s", "t")
    sub.lose()
    assert h.broker.sessions.get("s") is None
    assert h.broker.tree.match("t") == {}


def test_persistent_session_resumed() -> None:
    """CleanSession=0 keeps subscriptions and queues QoS 1 while offline; CONNACK says present."""
    h = SansIO()
    sub = h.connect("s", clean=False)
    sub.send(Subscribe(1, [("t", 1)]))
    sub.send(Disconnect())
    h.connect("p").send(Publish("t", b"offline", qos=1, packet_id=1))
    again = h.open()
    again.send(Connect("s", False, 60))
    assert again.packets() == [Connack(True, 0), Publish("t", b"offline", 1, packet_id=1)]


@pytest.mark.parametrize(
    ("connect", "code"),
    [
        (Connect("c", True, 60, protocol_level=3), 1),  # MQTT-3.1.2-2
        (Connect("", False, 60), 2),  # MQTT-3.1.3-8
    ],
)
def test_refusing_connack_sent_before_close(connect: Connect, code: int) -> None:
    """An unacceptable protocol level or an empty id without clean session gets its CONNACK."""
    h = SansIO()
    client = h.open()
    client.send(connect)
    assert client.packets() == [Connack(False, code)]
    assert client.link.closed
    assert client.conn.close_reason == "protocol_error"


def test_takeover_publishes_the_old_will() -> None:
    """The connection closed by a takeover is not a DISCONNECT, so its will is published."""
    h = SansIO()
    watcher = subscribed(h, "w", "will/#")
    h.connect("dup", will_topic="will/dup", will_payload=b"old", will_retain=True)
    h.connect("dup")
    assert watcher.packets() == [Publish("will/dup", b"old")]
    assert h.broker.retained.get("will/dup") is not None


def test_refused_connect_does_not_disturb_connected_namesake() -> None:
    """A refused CONNECT with a connected client's id leaves that client connected."""
    h = SansIO()
    first = h.connect("same")
    refused = h.open()
    refused.send(Connect("same", True, 60, protocol_level=3))
    assert refused.link.closed
    assert first.conn.state == CONNECTED
    assert h.broker.clients["same"] is first.conn
