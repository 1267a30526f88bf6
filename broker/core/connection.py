"""One client's network connection, sans-I/O: bytes and the time come in, bytes go out.

- MQTT-3.1.0-1: the first packet is CONNECT; anything else closes the connection.
- MQTT-3.1.0-2: a second CONNECT is a protocol violation.
- Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) close the connection.

Outgoing packets are collected in ``_out`` and written by the transport once per loop turn
(``Broker.flush``), so a burst reaches each client in one write.

Durable acknowledgement (spec section 5): a QoS 1/2 PUBLISH whose routing wrote to the store (a
retained message, a copy queued for a persistent session, its QoS 2 packet identifier) is
acknowledged only after the commit holding those writes (``AfterCommit``). PUBACKs still leave in
the order of their PUBLISH packets (MQTT-4.6.0-2): while one waits, the next ones wait too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from broker import _accel
from broker.hooks import PublishDecision
from broker.mqtt import constants as c
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import Packet, Publish
from broker.session.session import Message, Session

if TYPE_CHECKING:
    from broker.core.broker import Broker

NEW = 0  # waiting for CONNECT
CONNECTED = 1
CLOSED = 2
WAITING_AUTH = 3  # CONNECT received, the hooks decide later; later packets are held

encode_publish = _accel.encode_publish
encode_pubrel = _accel.encode_pubrel
encode_puback = _accel.encode_puback
encode_pubrec = _accel.encode_pubrec
ROUTE = PublishDecision.ROUTE
DEFERRED = PublishDecision.DEFERRED


class AfterCommit:
    """The acknowledgement of a client's PUBLISH, sent once the group commit holding its durable
    effects is done (a failed commit closes ``conn`` instead: Broker._commit_failed)."""

    __slots__ = ("conn", "packet")

    def __init__(self, conn: Any, packet: Publish) -> None:
        self.conn = conn
        self.packet = packet

    def __call__(self) -> None:
        conn = self.conn
        conn.acks_waiting -= 1
        conn.complete(self.packet)


class Link(Protocol):
    """What the transport offers a connection: one write per flush, and a close."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Connection:
    __slots__ = (
        "broker", "link", "framer", "state", "client_id", "username", "session", "will",
        "keepalive", "last_activity", "opened_at", "peer", "connection_id", "_out", "_dirty",
        "paused", "close_reason", "attrs", "protocol", "bytes_in", "bytes_out", "acks_waiting",
        "pending_connect", "_held", "__weakref__",
    )

    def __init__(self, broker: Broker, link: Link, peer: tuple[str, int], now: float,
                 protocol: str = "mqtt") -> None:
        self.broker = broker
        self.link = link
        self.framer = _accel.Framer(broker.config.mqtt.max_packet_size)
        self.state = NEW
        self.client_id = ""
        self.username: str | None = None
        self.session: Session | None = None
        self.will: Message | None = None
        self.keepalive = 0.0  # seconds of silence allowed before the close, 1.5x the client's
        self.last_activity = now
        self.opened_at = now
        self.peer = peer
        self.connection_id = os.urandom(16).hex()
        self._out: list[bytes] = []
        self._dirty = False
        self.paused = False
        self.close_reason = ""
        self.attrs: dict[str, Any] = {}  # free space for hooks (the gateway's identity, …)
        self.protocol = protocol
        self.bytes_in = 0
        self.bytes_out = 0
        self.acks_waiting = 0  # acknowledgements waiting for a commit (AfterCommit)
        self.pending_connect: Any = None  # the CONNECT the hooks decide later (WAITING_AUTH)
        self._held: list[Packet | ProtocolError] | None = None  # what came meanwhile

    def __repr__(self) -> str:
        return f"Connection({self.client_id!r}, {self.peer[0]}:{self.peer[1]})"

    # -- input ----------------------------------------------------------------------------

    def data_received(self, data: bytes, now: float) -> None:
        self.last_activity = now
        self.bytes_in += len(data)
        items = self.framer.feed(data)
        if self.state == WAITING_AUTH:
            self._hold(items, 0)
            return
        self._receive(items)

    def _receive(self, items: list[Packet | ProtocolError]) -> None:
        for index, item in enumerate(items):
            state = self.state
            if state == CLOSED:
                return
            if state == WAITING_AUTH:  # the CONNECT just handled is decided later
                self._hold(items, index)
                return
            if type(item) is Publish and state == CONNECTED:
                self.handle_publish(item)  # the hot packet skips the table
                continue
            if isinstance(item, ProtocolError):
                self.protocol_error(item)
                return
            if state == NEW:
                if item.type != c.CONNECT:
                    self.protocol_error(ProtocolError(
                        f"first packet is {c.PACKET_NAMES[item.type]}, not CONNECT",
                        "MQTT-3.1.0-1"))
                    return
                handler = HANDLERS[c.CONNECT]
            else:
                handler = HANDLERS.get(item.type)
                if handler is None or item.type == c.CONNECT:
                    rule = "MQTT-3.1.0-2" if item.type == c.CONNECT else "MQTT-4.8.0-1"
                    self.protocol_error(ProtocolError(
                        f"unexpected {c.PACKET_NAMES[item.type]} from a client", rule))
                    return
            self.broker.stats.packets_received[item.type] += 1
            handler(self, item)

    def _hold(self, items: list[Packet | ProtocolError], start: int) -> None:
        if self._held is None:
            self._held = []
        self._held.extend(items[start:])

    def resume(self) -> None:
        """After a late CONNECT decision: handle the packets that arrived meanwhile."""
        held = self._held
        self._held = None
        if held:
            self._receive(held)

    def handle_publish(self, packet: Publish) -> None:
        """PUBLISH from the client (section 3.3, 4.3).

        MQTT-4.3.2-2: QoS 1 is answered with PUBACK, MQTT-4.3.3-2: QoS 2 with PUBREC, after the
        commit of its durable effects, or after the hook's durable work when it defers. QoS 2
        exactly once: a packet identifier seen before its PUBREL is acknowledged again, but the
        message is not routed again; the identifier is stored with the message's effects.
        """
        broker = self.broker
        qos = packet.qos
        broker.stats.received_by_qos[qos] += 1
        if qos == 0:  # the hot path: nothing to acknowledge, nothing to wait for
            if broker.hooks.on_publish(self, packet) == ROUTE:
                if packet.retain:
                    broker.retain(packet.topic, packet.payload, 0)
                fan_out(broker, packet.topic, packet.payload, 0)
            return
        session = self.session
        if qos == 2 and packet.packet_id in session.incoming_qos2:  # type: ignore[union-attr]
            self.acknowledge(packet)
            return
        decision = broker.hooks.on_publish(self, packet)
        if decision == ROUTE:
            committer = broker.committer
            writes = committer.writes
            if packet.retain:
                broker.retain(packet.topic, packet.payload, qos)
            fan_out(broker, packet.topic, packet.payload, qos)
            if qos == 2:
                session.remember_qos2(packet.packet_id)  # type: ignore[union-attr]
            if committer.writes != writes:
                self.acks_waiting += 1
                committer.submit(None, AfterCommit(self, packet))
                return
        elif decision == DEFERRED:
            return
        self.acknowledge(packet)

    def acknowledge(self, packet: Publish) -> None:
        """PUBACK/PUBREC now, or behind the acknowledgements still waiting for a commit."""
        if self.acks_waiting:
            self.acks_waiting += 1
            self.broker.committer.submit(None, AfterCommit(self, packet))
        else:
            self.complete(packet)

    def protocol_error(self, error: ProtocolError) -> None:
        if error.connack >= 0 and self.state == NEW:
            self.send(_accel.encode_connack(False, error.connack))
        self.close(error.reason, str(error))

    # -- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        self._out.append(data)
        if not self._dirty:
            self._dirty = True
            self.broker.want_flush(self)

    def send_publish(self, message: Message, packet_id: int, dup: bool) -> None:
        self.send(encode_publish(message.topic, message.payload, message.qos, message.retain,
                                 dup, packet_id))
        self.broker.stats.sent_by_qos[message.qos] += 1

    def send_pubrel(self, packet_id: int) -> None:
        self.send(encode_pubrel(packet_id))

    def complete(self, packet: Publish) -> None:
        """Acknowledge a client's PUBLISH (PUBACK, or PUBREC for QoS 2); hooks that returned
        DEFERRED call this once their durable work is done."""
        if packet.qos == 1:
            self.send(encode_puback(packet.packet_id))
        elif packet.qos == 2 and self.session is not None:
            self.session.remember_qos2(packet.packet_id)
            self.send(encode_pubrec(packet.packet_id))

    def flush(self) -> None:
        self._dirty = False
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.bytes_out += len(data)
        self.link.write(data)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.session is not None:
            self.session.pump()

    # -- closing --------------------------------------------------------------------------

    def close(self, reason: str, detail: str = "") -> None:
        """Close with a debug-log reason; pending output (a refusing CONNACK) goes out first."""
        if self.state == CLOSED:
            return
        self.flush()
        self.state = CLOSED
        self.close_reason = reason
        self.link.close()
        self.broker.connection_closed(self, reason, detail)

    def connection_lost(self) -> None:
        """The peer went away (or the transport failed) without a DISCONNECT."""
        if self.state != CLOSED:
            self._out.clear()
            self.state = CLOSED
            self.close_reason = "ssl_closed"
            self.broker.connection_closed(self, "ssl_closed", "peer closed the connection")

    def deadline(self) -> float | None:
        """When this connection is to be closed for silence (``idle_timeout``), if ever."""
        if self.state == NEW or self.state == WAITING_AUTH:
            return self.opened_at + self.broker.config.mqtt.connect_timeout
        if self.state == CONNECTED and self.keepalive:
            return self.last_activity + self.keepalive
        return None


def fan_out(broker: Broker, topic: str, payload: bytes, qos: int) -> None:
    """Deliver one message to every matching subscription, once per subscriber, at
    min(message QoS, granted QoS) (MQTT-3.3.5-1) and with RETAIN=0 (MQTT-3.3.1-9)."""
    subscribers = broker.tree.match(topic)
    if not subscribers:
        return
    stats = broker.stats
    shared = None  # one encoding of the QoS 0 packet, shared by its subscribers
    message = None
    for session, granted in subscribers.items():
        qos_out = qos if qos < granted else granted
        if qos_out == 0:
            conn = session.connection
            if conn is None:
                continue
            if conn.paused:
                stats.messages_dropped += 1
                continue
            if shared is None:
                shared = encode_publish(topic, payload, 0, False, False, 0)
            conn.send(shared)
            stats.sent_by_qos[0] += 1
        else:
            if message is None or message.qos != qos_out:
                message = Message(topic, payload, qos_out, False)
            if not session.deliver(message):
                stats.messages_dropped += 1


Handler = Callable[[Connection, Any], None]
# Filled by broker.core.handlers: packet type -> handler (dispatch by explicit table).
HANDLERS: dict[int, Handler] = {}
__all__ = ["AfterCommit", "Connection", "HANDLERS", "Link", "Packet", "NEW", "CONNECTED", "CLOSED",
           "fan_out"]
