"""Durable acknowledgement in Connection.handle_publish (both twins) and the persistence of
session state through the group committer: a QoS 1/2 PUBLISH with durable effects is
acknowledged only after their commit, PUBACKs keep PUBLISH order (MQTT-4.6.0-2), a failed
commit acknowledges nothing, and a restarted broker finds queued and in-flight messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.core.broker import Broker
from broker.mqtt import codec
from broker.mqtt.packets import (
    Connack,
    Connect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
)
from broker.security.policy import PlainPolicy
from broker.storage.memory_store import MemoryStore
from tests.sansio import Client, SansIO, each_connection  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("each_connection")


def feed(client: Client, *packets: Any) -> None:
    """Packets in one chunk, without finishing the loop turn."""
    client.conn.data_received(b"".join(codec.encode(p) for p in packets), 0.0)


def stored(h: SansIO, table: str) -> list[tuple[bytes, bytes]]:
    with h.broker.store.read() as txn:
        return list(txn.scan(table))


def persistent_subscriber(h: SansIO, client_id: str, topic_filter: str, qos: int) -> Client:
    client = h.connect(client_id, clean=False)
    client.send(Subscribe(1, [(topic_filter, qos)]))
    client.packets()
    return client


def test_retained_qos1_acked_after_commit() -> None:
    h = SansIO()
    pub = h.connect("p")
    feed(pub, Publish("r/t", b"v", qos=1, retain=True, packet_id=1))
    h.broker.flush()  # the turn's output, before the commit at its end
    assert pub.packets() == [] and stored(h, "retained") == []
    h.run()
    assert stored(h, "retained") == [(b"r/t", b"\x01v")]
    assert pub.packets() == [Puback(1)]


def test_no_durable_effect_acked_at_once() -> None:
    """No retain, no persistent subscriber: PUBACK without waiting and without a commit."""
    h = SansIO()
    pub = h.connect("p")
    feed(pub, Publish("t", b"v", qos=1, packet_id=1))
    assert pub.conn.acks_waiting == 0
    h.run()
    assert pub.packets() == [Puback(1)]
    assert h.broker.store.commits == 0


def test_pubacks_keep_publish_order() -> None:
    """A PUBLISH without durable effects behind one waiting for its commit waits too."""
    h = SansIO()
    pub = h.connect("p")
    feed(pub, Publish("r/t", b"v", qos=1, retain=True, packet_id=1),
         Publish("t", b"v", qos=1, packet_id=2), Publish("t", b"v", qos=2, packet_id=3))
    h.run()
    assert pub.packets() == [Puback(1), Puback(2), Pubrec(3)]
    assert pub.conn.acks_waiting == 0
    assert h.broker.store.commits == 1  # one turn, one commit


def test_queued_for_persistent_session_then_deleted_on_puback() -> None:
    h = SansIO()
    sub = persistent_subscriber(h, "s", "q/#", 1)
    pub = h.connect("p")
    pub.send(Publish("q/1", b"one", qos=1, packet_id=7))
    assert pub.packets() == [Puback(7)]
    [(key, _)] = stored(h, "queue")
    assert key.startswith(b"s\0")
    [got] = sub.packets()
    sub.send(Puback(got.packet_id))  # type: ignore[attr-defined]
    assert stored(h, "queue") == []


def test_incoming_qos2_id_stored_until_pubrel_and_pubcomp_after_commit() -> None:
    h = SansIO()
    pub = h.connect("p", clean=False)
    pub.send(Publish("t", b"x", qos=2, packet_id=9))
    assert pub.packets() == [Pubrec(9)]
    assert stored(h, "qos2_in") == [(b"p\0\x00\x09", b"")]
    feed(pub, Pubrel(9))
    h.broker.flush()
    assert pub.packets() == []  # PUBCOMP waits for the commit that forgets the id
    h.run()
    assert pub.packets() == [Pubcomp(9)]
    assert stored(h, "qos2_in") == []


def test_failed_commit_closes_publisher_without_ack() -> None:
    class FailingStore(MemoryStore):
        fail = True

        @contextmanager
        def write(self) -> Iterator[Any]:
            with super().write() as txn:
                yield txn
                if self.fail:
                    raise OSError(5, "I/O error")

    h = SansIO()
    h.broker = Broker(h.config, PlainPolicy(h.config.mqtt), FailingStore(), h.scheduled.append)
    pub = h.connect("p")
    pub.send(Publish("r/t", b"v", qos=1, retain=True, packet_id=1))
    assert pub.packets() == []
    assert pub.conn.close_reason == "storage_error"


def test_restart_rebuilds_queue_and_inflight() -> None:
    """A broker started on the store of another finds the persistent session's in-flight
    message (resent DUP=1 with its packet identifier) and its queue, in order."""
    h = SansIO(max_inflight=1)
    sub = persistent_subscriber(h, "s", "q/#", 1)
    pub = h.connect("p")
    for i in range(1, 4):
        pub.send(Publish(f"q/{i}", b"%d" % i, qos=1, packet_id=i))
    [first] = sub.packets()
    sub.lose()
    store = h.broker.store
    again = SansIO(max_inflight=1)
    again.broker = Broker(again.config, PlainPolicy(again.config.mqtt), store,
                          again.scheduled.append)
    session = again.broker.sessions.get("s")
    assert [m.topic for m in session.queue] == ["q/2", "q/3"]
    client = again.open()
    client.send(Connect("s", False, 60))
    connack, *resent = client.packets()
    assert connack == Connack(True, 0)
    assert resent == [Publish("q/1", b"1", 1, dup=True, packet_id=first.packet_id)]  # type: ignore[attr-defined]
    client.send(Puback(first.packet_id))  # type: ignore[attr-defined]
    [second] = client.packets()
    assert second.topic == "q/2" and not second.dup  # type: ignore[attr-defined]
    client.send(Puback(second.packet_id))  # type: ignore[attr-defined]
    [third] = client.packets()
    client.send(Puback(third.packet_id))  # type: ignore[attr-defined]
    assert stored(again, "queue") == []
