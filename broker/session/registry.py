"""The sessions of all clients by client id, and their persistence.

A persistent session's subscriptions are written to the store (table ``sessions``) when they
change, and loaded at start, so they survive a restart. (Queued QoS 1/2 messages of offline
sessions are held in memory; their durable form comes with the LMDB store.)
"""

from __future__ import annotations

import json
from typing import Any

from broker.session.session import Session
from broker.storage import Store


class SessionRegistry:
    def __init__(self, tree: Any, store: Store) -> None:
        self._sessions: dict[str, Session] = {}
        self._tree = tree
        self._store = store

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, client_id: str) -> Session | None:
        return self._sessions.get(client_id)

    def create(self, client_id: str, clean: bool, max_inflight: int, max_queued: int) -> Session:
        session = Session(client_id, clean, max_inflight, max_queued)
        self._sessions[client_id] = session
        if not clean:
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
            with self._store.write() as txn:
                txn.delete("sessions", session.client_id.encode())

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
        with self._store.write() as txn:
            txn.put("sessions", session.client_id.encode(), json.dumps(record).encode())

    def load(self, max_inflight: int, max_queued: int) -> None:
        with self._store.read() as txn:
            rows = list(txn.scan("sessions"))
        for key, value in rows:
            record = json.loads(value)
            session = Session(key.decode(), False, max_inflight, max_queued)
            self._sessions[session.client_id] = session
            for topic_filter, qos in record["subscriptions"].items():
                self.subscribe(session, topic_filter, qos)
