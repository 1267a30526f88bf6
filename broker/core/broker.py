"""The broker: sessions, routing, retained messages and wills, shared by all connections.

Sans-I/O like the connections: the transport injects ``schedule`` (run a callback after the
current loop turn) and passes the time in. The core talks to the layer above only through
``hooks`` (broker/hooks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from broker import _accel
from broker.config import Config
from broker.core import connection as _pure_connection
from broker.core import handlers  # noqa: F401  (fills the packet dispatch table)
from broker.core.connection import CONNECTED
from broker.core.stats import Stats
from broker.hooks import BrokerHooks
from broker.routing.retained import RetainedMessages
from broker.session.registry import SessionRegistry
from broker.session.session import Message, Session
from broker.storage import Store
from broker.storage.commit import Done, GroupCommitter

Offload = Callable[[Callable[[], Any], Callable[[Any], None]], None]
log = logging.getLogger("fleetgate.broker")
debug_log = logging.getLogger("fleetgate.debug")

encode_publish = _accel.encode_publish
# The connection class the transport makes, and its fan-out: compiled twins when they load.
_connection = _accel.load("connection", _pure_connection)
Connection = _connection.Connection
fan_out = _connection.fan_out


class Broker:
    def __init__(
        self,
        config: Config,
        hooks: BrokerHooks,
        store: Store,
        schedule: Callable[[Callable[[], None]], object],
        committer: GroupCommitter | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.config = config
        self.hooks = hooks
        self.store = store
        self._schedule = schedule
        # Runs slow CPU work (password hashing) off the loop: ``offload(work, done)`` calls
        # ``done(work())`` back on the loop. None: hooks do such work in place.
        self.offload = offload
        self.stats = Stats()
        self.tree = _accel.TopicTree()
        self.retained = RetainedMessages()
        # Durable writes go through the committer: one transaction per loop turn, then the
        # acknowledgements that waited for it (inline on the loop unless the server gives one
        # with a writer thread).
        self.committer = committer or GroupCommitter(store, schedule)
        if self.committer.on_error is None:
            self.committer.on_error = self._commit_failed
        self.sessions = SessionRegistry(self.tree, store, self.committer)
        self.clients: dict[str, Connection] = {}  # client id -> connected connection
        self.connections: set[Connection] = set()
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._load()

    def _load(self) -> None:
        with self.store.read() as txn:
            for key, value in txn.scan("retained"):
                self.retained.set(Message(key.decode(), value[1:], value[0], True))
        self.sessions.load(self.config.mqtt.max_inflight, self.config.mqtt.max_queued_messages)

    # -- connections ----------------------------------------------------------------------

    def connection_opened(self, conn: Connection) -> bool:
        """Register a new connection; False (and closed) when the broker is full."""
        self.connections.add(conn)
        self.stats.connections_total += 1
        if len(self.connections) > self.config.mqtt.max_connections:
            conn.close("max_connections", f"limit of {self.config.mqtt.max_connections} reached")
            return False
        return True

    def connection_closed(self, conn: Connection, reason: str, detail: str) -> None:
        self.connections.discard(conn)
        stats = self.stats
        stats.close_reasons[reason] += 1
        stats.bytes_received += conn.bytes_in
        stats.bytes_sent += conn.bytes_out
        if reason != "normal":
            self.debug(conn, reason, detail)
        session = conn.session
        if session is None:
            return
        if self.clients.get(conn.client_id) is conn:
            del self.clients[conn.client_id]
        will = conn.will
        conn.will = None
        if session.connection is conn:
            session.connection = None
            if session.clean:
                self.sessions.discard(session)
        # Wills are for clients that vanish, not for a broker that stops (server_shutdown).
        if will is not None and reason != "server_shutdown":
            self.publish(will.topic, will.payload, will.qos, will.retain)
        self.hooks.on_disconnect(conn, reason)

    def debug(self, conn: Connection | None, reason: str, detail: str = "") -> None:
        if debug_log.isEnabledFor(logging.DEBUG):
            who = f"{conn.client_id or '-'}@{conn.peer[0]}" if conn else "-"
            debug_log.debug("%s %s %s", reason, who, detail)
        self.hooks.on_debug(conn, reason, detail)

    def take_over(self, client_id: str) -> None:
        """MQTT-3.1.4-2: a CONNECT with a client id already connected closes the older one."""
        old = self.clients.get(client_id)
        if old is not None and old.state == CONNECTED:
            old.close("duplicate_connection", "a new connection with the same client id")

    # -- messages -------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Route one message to every matching subscription (and keep it if retained)."""
        if retain:
            self.retain(topic, payload, qos)
        fan_out(self, topic, payload, qos)

    def retain(self, topic: str, payload: bytes, qos: int) -> None:
        self.retained.set(Message(topic, payload, qos, True))
        if payload:
            self.committer.put("retained", topic.encode(), bytes((qos,)) + payload)
        else:
            self.committer.delete("retained", topic.encode())

    def _commit_failed(self, error: BaseException, dones: list[Done]) -> None:
        """A commit failed: nothing it held is acknowledged. The connections that waited are
        closed, so their clients resend the unacknowledged messages when they reconnect."""
        for done in dones:
            conn = getattr(done, "conn", None)
            if conn is not None:
                conn.close("storage_error", repr(error))

    def send_retained(self, session: Session, topic_filter: str, granted: int) -> None:
        """MQTT-3.3.1-6: a new subscription receives the matching retained messages, RETAIN=1."""
        conn = session.connection
        for message in self.retained.match(topic_filter):
            qos = min(message.qos, granted)
            if qos == 0:
                if conn is not None:
                    conn.send(encode_publish(message.topic, message.payload, 0, True, False, 0))
                    self.stats.sent_by_qos[0] += 1
            elif not session.deliver(Message(message.topic, message.payload, qos, True)):
                self.stats.messages_dropped += 1

    # -- output ---------------------------------------------------------------------------

    def want_flush(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._schedule(self.flush)

    def flush(self) -> None:
        """Write each connection's collected packets at once: one write per loop turn."""
        self._flush_scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()

    def close_all(self, reason: str = "server_shutdown") -> None:
        for conn in list(self.connections):
            conn.close(reason)
        self.flush()
