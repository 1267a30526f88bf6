"""The sessions of all clients by client id, and their persistence.

A persistent session (CleanSession=0) lives in three tables, written through the group committer
(so a PUBLISH that queued a copy for it is acknowledged only after that copy is committed):

- ``sessions``: client id -> JSON ``{"subscriptions": {filter: qos}}``.
- ``queue``: client id, NUL, 8-byte big-endian message number -> state (1 byte), QoS, RETAIN,
  packet identifier (2 bytes; 0 while queued), topic length (2 bytes), topic, payload. Written
  when the message is queued or sent, rewritten when its QoS 2 flow moves on, deleted when it is
  acknowledged (PUBACK / PUBCOMP).
- ``qos2_in``: client id, NUL, packet identifier (2 bytes) -> empty: incoming QoS 2 messages whose
  PUBREL has not arrived.

Client ids cannot contain NUL (MQTT-1.5.3-2), so ``<client id>\\0`` is a safe key prefix. At start
``load`` rebuilds every persistent session: subscriptions, in-flight messages (re-sent with
DUP=1, same packet identifiers, same order, on reconnect) and the queue.
"""

from __future__ import annotations

import json
import struct
from collections import deque
from typing import Any

from broker.session.session import AWAIT_ACK, Inflight, Message, Session
from broker.storage import Store
from broker.storage.commit import GroupCommitter

_HEAD = struct.Struct(">BBBHH")  # state, qos, retain, packet id, topic length


def _queue_key(client_id: str, seq: int) -> bytes:
    return client_id.encode() + b"\0" + seq.to_bytes(8, "big")


def encode_entry(state: int, packet_id: int, message: Message) -> bytes:
    topic = message.topic.encode()
    return _HEAD.pack(state, message.qos, message.retain, packet_id, len(topic)) + topic + \
        message.payload


def decode_entry(value: bytes) -> tuple[int, int, Message]:
    state, qos, retain, packet_id, topic_len = _HEAD.unpack_from(value)
    start = _HEAD.size
    topic = value[start:start + topic_len].decode()
    return state, packet_id, Message(topic, value[start + topic_len:], qos, bool(retain))


class SessionRegistry:
    def __init__(self, tree: Any, store: Store, committer: GroupCommitter) -> None:
        self._sessions: dict[str, Session] = {}
        self._tree = tree
        self._store = store
        self._committer = committer

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, client_id: str) -> Session | None:
        return self._sessions.get(client_id)

    def create(self, client_id: str, clean: bool, max_inflight: int, max_queued: int) -> Session:
        session = Session(client_id, clean, max_inflight, max_queued)
        self._sessions[client_id] = session
        if not clean:
            session.journal = self
            self.save(session)
        return session

    def discard(self, session: Session) -> None:
        """Forget a session and its subscriptions (clean session end, MQTT-3.1.2-6)."""
        for topic_filter in session.subscriptions:
            self._tree.unsubscribe(topic_filter, session)
        session.subscriptions.clear()
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
        if not session.clean:
            session.journal = None
            client_id = session.client_id
            self._committer.delete("sessions", client_id.encode())
            self._committer.submit(lambda txn: _delete_records(txn, client_id))

    def subscribe(self, session: Session, topic_filter: str, qos: int) -> None:
        session.subscriptions[topic_filter] = qos
        self._tree.subscribe(topic_filter, session, qos)

    def unsubscribe(self, session: Session, topic_filter: str) -> None:
        if session.subscriptions.pop(topic_filter, None) is not None:
            self._tree.unsubscribe(topic_filter, session)

    def save(self, session: Session) -> None:
        if session.clean:
            return
        record = {"subscriptions": session.subscriptions}
        self._committer.put("sessions", session.client_id.encode(), json.dumps(record).encode())

    # -- Journal: a persistent session's QoS 1/2 state ------------------------------------

    def message_stored(self, session: Session, seq: int, packet_id: int, entry: Message,
                       state: int) -> None:
        self._committer.put("queue", _queue_key(session.client_id, seq),
                            encode_entry(state, packet_id, entry))

    def message_done(self, session: Session, seq: int) -> None:
        self._committer.delete("queue", _queue_key(session.client_id, seq))

    def incoming_qos2(self, session: Session, packet_id: int, present: bool) -> None:
        key = session.client_id.encode() + b"\0" + packet_id.to_bytes(2, "big")
        if present:
            self._committer.put("qos2_in", key, b"")
        else:
            self._committer.delete("qos2_in", key)

    # -- start ----------------------------------------------------------------------------

    def load(self, max_inflight: int, max_queued: int) -> None:
        with self._store.read() as txn:
            sessions = list(txn.scan("sessions"))
            queued = list(txn.scan("queue"))
            qos2_in = list(txn.scan("qos2_in"))
        for key, value in sessions:
            record = json.loads(value)
            session = Session(key.decode(), False, max_inflight, max_queued)
            session.journal = self
            self._sessions[session.client_id] = session
            for topic_filter, qos in record["subscriptions"].items():
                self.subscribe(session, topic_filter, qos)
        orphans: list[tuple[str, bytes]] = []  # records of sessions that are gone
        for key, value in queued:  # in key order: per client, in delivery order
            session = self._sessions.get(key[:-9].decode())  # client id, NUL, 8-byte number
            if session is None:
                orphans.append(("queue", key))
                continue
            seq = int.from_bytes(key[-8:], "big")
            state, packet_id, message = decode_entry(value)
            if packet_id:
                session.inflight[packet_id] = Inflight(message, seq, state)
                session._next_id = packet_id
            else:
                if not session.queue:
                    session.queue = deque()  # the shared empty one is read-only
                session.queue.append(message)
            session._seq = seq + 1
        for key, _ in qos2_in:
            session = self._sessions.get(key[:-3].decode())  # client id, NUL, packet id
            if session is None:
                orphans.append(("qos2_in", key))
                continue
            if not session.incoming_qos2:
                session.incoming_qos2 = set()
            session.incoming_qos2.add(int.from_bytes(key[-2:], "big"))  # type: ignore[union-attr]
        # Session.pump relies on the queue holding the messages numbered up to _seq - 1; a
        # store that does not (a partial copy, say) is renumbered rather than trusted.
        renumber = [session for session in self._sessions.values()
                    if session.queue and not _queue_numbered(session, queued)]
        if orphans or renumber:
            with self._store.write() as txn:
                for table, key in orphans:
                    txn.delete(table, key)
                for session in renumber:
                    _renumber(txn, session)


def _queue_numbered(session: Session, queued: list[tuple[bytes, bytes]]) -> bool:
    prefix = session.client_id.encode() + b"\0"
    seqs = [int.from_bytes(key[len(prefix):], "big") for key, value in queued
            if key.startswith(prefix) and not decode_entry(value)[1]]
    return seqs == list(range(session._seq - len(seqs), session._seq))


def _renumber(txn: Any, session: Session) -> None:
    _delete_records(txn, session.client_id, tables=("queue",))
    seq = 0
    for packet_id, entry in session.inflight.items():
        entry.seq = seq
        txn.put("queue", _queue_key(session.client_id, seq),
                encode_entry(entry.state, packet_id, entry.message))
        seq += 1
    for message in session.queue:
        txn.put("queue", _queue_key(session.client_id, seq),
                encode_entry(AWAIT_ACK, 0, message))
        seq += 1
    session._seq = seq


def _delete_records(txn: Any, client_id: str,
                    tables: tuple[str, ...] = ("queue", "qos2_in")) -> None:
    prefix = client_id.encode() + b"\0"
    for table in tables:
        for key, _ in list(txn.scan(table, prefix)):
            txn.delete(table, key)
