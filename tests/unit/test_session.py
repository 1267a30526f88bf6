"""broker/session/session.py: packet identifiers, the inflight window, the queue and resending."""

from __future__ import annotations

import pytest

from broker.mqtt.packets import Connack, Connect, Publish, Pubrel, Subscribe
from broker.session.session import AWAIT_ACK, AWAIT_PUBCOMP, Message, Session
from tests.sansio import Client, SansIO, each_connection  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("each_connection")


def setup(max_inflight: int = 2, max_queued: int = 3) -> tuple[SansIO, Client, Session]:
    h = SansIO(max_inflight=max_inflight, max_queued_messages=max_queued)
    client = h.connect("s1")
    session = client.conn.session
    assert session is not None
    return h, client, session


def msg(n: int, qos: int = 1) -> Message:
    return Message(f"t/{n}", str(n).encode(), qos, False)


def deliver(h: SansIO, session: Session, *messages: Message) -> list[bool]:
    results = [session.deliver(m) for m in messages]
    h.run()
    return results


def ids(packets: list[object]) -> list[int]:
    return [p.packet_id for p in packets]  # type: ignore[attr-defined]


# -- packet identifiers -------------------------------------------------------------------------


def test_packet_ids_count_up_from_one() -> None:
    """Outgoing QoS 1/2 PUBLISHes get identifiers 1, 2, … (MQTT-2.3.1-1: never 0)."""
    h, client, session = setup(max_inflight=5)
    deliver(h, session, msg(1), msg(2, qos=2), msg(3))
    assert client.packets() == [
        Publish("t/1", b"1", 1, packet_id=1),
        Publish("t/2", b"2", 2, packet_id=2),
        Publish("t/3", b"3", 1, packet_id=3),
    ]


def test_packet_id_wraps_at_65535_and_skips_inflight() -> None:
    """After 65535 the identifier wraps to 1, skipping identifiers still in flight."""
    h, client, session = setup(max_inflight=5)
    deliver(h, session, msg(1))  # id 1 stays in flight
    session._next_id = 65534  # as if 65533 more flows had completed
    deliver(h, session, msg(2), msg(3), msg(4))
    assert ids(client.packets()) == [1, 65535, 2, 3]
    assert set(session.inflight) == {1, 65535, 2, 3}


def test_packet_id_reused_after_acknowledgement() -> None:
    """Identifiers freed by an acknowledgement may be reused after the wrap."""
    h, client, session = setup(max_inflight=2)
    deliver(h, session, msg(1))
    assert session.acknowledge(1, 1)
    session._next_id = 65535
    deliver(h, session, msg(2))
    assert ids(client.packets()) == [1, 1]


# -- deliver, queue, pump -----------------------------------------------------------------------


def test_window_full_queues_and_ack_pumps() -> None:
    """Beyond max_inflight messages queue; each acknowledgement sends the next, in order."""
    h, client, session = setup(max_inflight=2, max_queued=10)
    assert deliver(h, session, msg(1), msg(2), msg(3), msg(4)) == [True] * 4
    assert ids(client.packets()) == [1, 2]
    assert [m.topic for m in session.queue] == ["t/3", "t/4"]
    assert session.acknowledge(1, 1)
    h.run()
    assert client.packets() == [Publish("t/3", b"3", 1, packet_id=3)]
    assert len(session.inflight) == 2


def test_queue_limit_drops_and_counts() -> None:
    """A full queue refuses the message: deliver returns False and ``dropped`` counts it."""
    h, client, session = setup(max_inflight=1, max_queued=2)
    assert deliver(h, session, msg(1), msg(2), msg(3), msg(4), msg(5)) == [
        True, True, True, False, False]
    assert session.dropped == 2
    assert [m.topic for m in session.queue] == ["t/2", "t/3"]


def test_offline_session_queues() -> None:
    """With no connection every message queues (persistent session while offline)."""
    session = Session("off", False, max_inflight=5, max_queued=2)
    assert session.deliver(msg(1))
    assert session.deliver(msg(2))
    assert not session.deliver(msg(3))
    assert not session.inflight
    assert session.dropped == 1
    session.pump()  # no connection: nothing moves
    assert len(session.queue) == 2


def test_paused_connection_queues_and_resume_pumps() -> None:
    """A paused (slow) connection gets nothing new; resume_writing sends the queue in order."""
    h, client, session = setup(max_inflight=2, max_queued=10)
    client.conn.pause_writing()
    deliver(h, session, msg(1), msg(2), msg(3))
    assert client.packets() == []
    assert not session.inflight
    client.conn.resume_writing()
    h.run()
    assert [p.topic for p in client.packets()] == ["t/1", "t/2"]  # type: ignore[attr-defined]
    assert [m.topic for m in session.queue] == ["t/3"]


def test_new_message_waits_behind_queue() -> None:
    """With messages queued, a new one goes behind them even when the window has room."""
    h, client, session = setup(max_inflight=5, max_queued=10)
    client.conn.paused = True
    deliver(h, session, msg(1))
    client.conn.paused = False  # window free, queue not yet pumped
    deliver(h, session, msg(2))
    assert client.packets() == []
    session.pump()
    h.run()
    assert [p.topic for p in client.packets()] == ["t/1", "t/2"]  # type: ignore[attr-defined]


def test_pump_respects_max_inflight() -> None:
    """pump never grows the inflight window past max_inflight."""
    h, client, session = setup(max_inflight=3, max_queued=20)
    client.conn.paused = True
    deliver(h, session, *(msg(n) for n in range(10)))
    client.conn.paused = False
    session.pump()
    h.run()
    assert len(session.inflight) == 3
    assert len(client.packets()) == 3
    assert len(session.queue) == 7


# -- acknowledgements ---------------------------------------------------------------------------


def test_acknowledge_checks_id_and_qos() -> None:
    """PUBACK ends only a QoS 1 flow it names; PUBCOMP only a QoS 2 flow past PUBREC."""
    h, client, session = setup(max_inflight=5)
    deliver(h, session, msg(1, qos=1), msg(2, qos=2))
    assert not session.acknowledge(99, 1)  # unknown identifier
    assert not session.acknowledge(1, 2)  # PUBCOMP for a QoS 1 flow
    assert not session.acknowledge(2, 1)  # PUBACK for a QoS 2 flow
    assert not session.acknowledge(2, 2)  # PUBCOMP before PUBREC
    assert set(session.inflight) == {1, 2}
    assert session.acknowledge(1, 1)
    assert not session.acknowledge(1, 1)  # already ended
    assert session.received(2)
    assert session.acknowledge(2, 2)
    assert not session.inflight


def test_received_checks_qos2() -> None:
    """PUBREC moves only a QoS 2 entry to AWAIT_PUBCOMP; others are refused."""
    h, client, session = setup(max_inflight=5)
    deliver(h, session, msg(1, qos=1), msg(2, qos=2))
    assert not session.received(1)
    assert not session.received(77)
    assert session.inflight[1].state == AWAIT_ACK
    assert session.inflight[2].state == AWAIT_ACK
    assert session.received(2)
    assert session.inflight[2].state == AWAIT_PUBCOMP


# -- resending ----------------------------------------------------------------------------------


def test_resend_order_publish_dup_and_pubrel() -> None:
    """On resume: inflight in send order, PUBLISH DUP=1 or PUBREL (AWAIT_PUBCOMP), then queue."""
    h = SansIO(max_inflight=3, max_queued_messages=10)
    sub = h.connect("sub", clean=False)
    sub.send(Subscribe(1, [("t/#", 2)]))
    sub.packets()
    pub = h.connect("pub")
    pub.send(Publish("t/1", b"a", qos=1, packet_id=1))
    pub.send(Publish("t/2", b"b", qos=2, packet_id=2))
    pub.send(Publish("t/3", b"c", qos=2, packet_id=3))
    pub.send(Publish("t/4", b"d", qos=1, packet_id=4))
    assert ids(sub.packets()) == [1, 2, 3]
    session = sub.conn.session
    assert session is not None
    assert session.received(2)  # t/2 is past PUBREC
    sub.lose()

    again = h.open()
    again.send(Connect("sub", False, 60))
    assert again.packets() == [
        Connack(True, 0),
        Publish("t/1", b"a", 1, dup=True, packet_id=1),
        Pubrel(2),
        Publish("t/3", b"c", 2, dup=True, packet_id=3),
    ]
    assert [m.topic for m in session.queue] == ["t/4"]
    assert session.acknowledge(1, 1)
    h.run()
    assert again.packets() == [Publish("t/4", b"d", 1, packet_id=4)]


def test_resend_then_queue_fills_free_window() -> None:
    """resend sends queued messages after the inflight ones while the window has room."""
    h, client, session = setup(max_inflight=3, max_queued=10)
    deliver(h, session, msg(1))
    client.packets()
    client.conn.paused = True
    deliver(h, session, msg(2), msg(3), msg(4))
    client.conn.paused = False
    session.resend()
    h.run()
    assert client.packets() == [
        Publish("t/1", b"1", 1, dup=True, packet_id=1),
        Publish("t/2", b"2", 1, packet_id=2),
        Publish("t/3", b"3", 1, packet_id=3),
    ]
