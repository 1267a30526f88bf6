"""MQTT session state (section 4.1): subscriptions, outgoing QoS 1/2 flows, incoming QoS 2 ids.

A session outlives its network connection when the client asked for a persistent session
(CleanSession=0, MQTT-3.1.2-4): its subscriptions keep matching, QoS 1/2 messages queue up to
``max_queued`` while it is offline, and unacknowledged messages are sent again with DUP=1, in their
original order and with their original packet identifiers, when it reconnects (MQTT-4.4.0-1).

Outgoing QoS 2 uses the two-step flow of MQTT-4.3.3: PUBLISH → PUBREC, PUBREL → PUBCOMP; an
inflight entry in state ``AWAIT_PUBCOMP`` is re-sent as a PUBREL, never as a PUBLISH.
Incoming QoS 2 (MQTT-4.3.3-2, method B): the message is routed when its PUBLISH first arrives and
its packet identifier is kept until PUBREL, so a duplicate PUBLISH is acknowledged but not routed.

A persistent session has a ``journal`` (the registry): every QoS 1/2 message it queues or sends
and every incoming QoS 2 packet identifier is written to the store as it changes and deleted
when its flow ends, so a restart finds them (broker/session/registry.py). Messages are numbered
in delivery order (``seq``); the queue holds the newest ones, numbered up to ``_seq - 1``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from broker.core.connection import Connection

AWAIT_ACK = 0  # QoS 1: PUBACK; QoS 2: PUBREC
AWAIT_PUBCOMP = 1


class Message(NamedTuple):
    topic: str
    payload: bytes
    qos: int
    retain: bool


# Shared empty stand-ins until a session first needs a queue or QoS 2 ids: most sessions never
# do, and the real containers cost ~1 KB per connection.
_EMPTY_QUEUE: deque[Message] = deque(maxlen=0)
_NO_IDS: frozenset[int] = frozenset()


class Inflight:
    __slots__ = ("message", "state", "seq")

    def __init__(self, message: Message, seq: int = 0, state: int = AWAIT_ACK) -> None:
        self.message = message
        self.state = state
        self.seq = seq


class Journal(Protocol):
    """Where a persistent session writes its QoS 1/2 state (the registry, through the store)."""

    def message_stored(self, session: Session, seq: int, packet_id: int,
                       entry: Message, state: int) -> None:
        """Message ``seq`` is queued (packet_id 0) or in flight in ``state``."""
        ...

    def message_done(self, session: Session, seq: int) -> None: ...

    def incoming_qos2(self, session: Session, packet_id: int, present: bool) -> None: ...


class Session:
    __slots__ = (
        "client_id", "clean", "subscriptions", "inflight", "queue", "incoming_qos2",
        "connection", "_next_id", "max_inflight", "max_queued", "dropped", "journal", "_seq",
    )

    def __init__(self, client_id: str, clean: bool, max_inflight: int, max_queued: int) -> None:
        self.client_id = client_id
        self.clean = clean
        self.subscriptions: dict[str, int] = {}
        # Insertion order is send order: resending walks it front to back (MQTT-4.6.0-1).
        self.inflight: dict[int, Inflight] = {}
        self.queue: deque[Message] = _EMPTY_QUEUE
        self.incoming_qos2: set[int] | frozenset[int] = _NO_IDS
        self.connection: Connection | None = None
        self._next_id = 0
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.dropped = 0
        self.journal: Journal | None = None
        self._seq = 0  # number of the next message delivered

    def __repr__(self) -> str:
        return f"Session({self.client_id!r}, clean={self.clean})"

    # -- outgoing -------------------------------------------------------------------------

    def _packet_id(self) -> int:
        # Skip identifiers still in flight; the window is far below 65535 so this ends.
        while True:
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id

    def deliver(self, message: Message) -> bool:
        """Send a QoS 1/2 message now, or queue it; False if it was dropped (queue full)."""
        conn = self.connection
        if (
            conn is not None
            and not conn.paused
            and len(self.inflight) < self.max_inflight
            and not self.queue
        ):
            seq = self._seq
            self._seq = seq + 1
            self._send(conn, message, seq)
            return True
        if len(self.queue) >= self.max_queued:
            self.dropped += 1
            return False
        if self.queue is _EMPTY_QUEUE:
            self.queue = deque()
        self.queue.append(message)
        if self.journal is not None:
            self.journal.message_stored(self, self._seq, 0, message, AWAIT_ACK)
        self._seq += 1
        return True

    def _send(self, conn: Connection, message: Message, seq: int) -> None:
        packet_id = self._packet_id()
        self.inflight[packet_id] = Inflight(message, seq)
        if self.journal is not None:
            self.journal.message_stored(self, seq, packet_id, message, AWAIT_ACK)
        conn.send_publish(message, packet_id, False)

    def pump(self) -> None:
        """Move queued messages into the inflight window while the connection can take them."""
        conn = self.connection
        queue = self.queue
        if conn is None:
            return
        while queue and not conn.paused and len(self.inflight) < self.max_inflight:
            seq = self._seq - len(queue)  # the queue holds the newest messages, in order
            self._send(conn, queue.popleft(), seq)

    def resend(self) -> None:
        """After a reconnect: PUBLISH (DUP=1) or PUBREL per inflight entry, then the queue."""
        conn = self.connection
        assert conn is not None
        for packet_id, entry in self.inflight.items():
            if entry.state == AWAIT_ACK:
                conn.send_publish(entry.message, packet_id, True)
            else:
                conn.send_pubrel(packet_id)
        self.pump()

    def acknowledge(self, packet_id: int, qos: int) -> bool:
        """PUBACK (qos 1) or PUBCOMP (qos 2) ended a flow; False if nothing was waiting for it."""
        entry = self.inflight.get(packet_id)
        if entry is None or entry.message.qos != qos:
            return False
        if qos == 2 and entry.state != AWAIT_PUBCOMP:
            return False
        del self.inflight[packet_id]
        if self.journal is not None:
            self.journal.message_done(self, entry.seq)
        self.pump()
        return True

    # -- incoming QoS 2 ----------------------------------------------------------------------

    def remember_qos2(self, packet_id: int) -> None:
        """PUBREC sent for this id: a re-sent PUBLISH with it is not routed again."""
        if packet_id in self.incoming_qos2:
            return
        if self.incoming_qos2 is _NO_IDS:
            self.incoming_qos2 = set()
        self.incoming_qos2.add(packet_id)  # type: ignore[union-attr]
        if self.journal is not None:
            self.journal.incoming_qos2(self, packet_id, True)

    def release_qos2(self, packet_id: int) -> None:
        """PUBREL arrived: the id may be used for a new message."""
        if packet_id in self.incoming_qos2:
            self.incoming_qos2.discard(packet_id)  # type: ignore[union-attr]
            if self.journal is not None:
                self.journal.incoming_qos2(self, packet_id, False)

    def received(self, packet_id: int) -> bool:
        """PUBREC for an outgoing QoS 2 message: it moves on to awaiting PUBCOMP."""
        entry = self.inflight.get(packet_id)
        if entry is None or entry.message.qos != 2:
            return False
        if entry.state != AWAIT_PUBCOMP:
            entry.state = AWAIT_PUBCOMP
            if self.journal is not None:
                self.journal.message_stored(self, entry.seq, packet_id, entry.message,
                                            AWAIT_PUBCOMP)
        return True
