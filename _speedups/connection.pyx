# cython: language_level=3
"""Cython twin of ``broker/core/connection.py``: the ``Connection`` class and ``fan_out``.

Same attributes, methods and results as the reference, which owns the semantics (read its
docstrings for the MQTT rules). What differs is only speed: the connection is a C struct, the
per-packet loop and the PUBLISH path (``handle_publish`` → ``fan_out`` → ``send``) run without
the interpreter, and sends to compiled connections are C calls.
"""

import os

from _speedups.codec import (
    encode_connack,
    encode_puback,
    encode_publish,
    encode_pubrec,
    encode_pubrel,
)
from _speedups.framing import Framer

from broker.core.connection import HANDLERS, AfterCommit
from broker.hooks import PublishDecision
from broker.mqtt import constants as c
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import Publish
from broker.session.session import Message

cdef enum:
    NEW = 0
    CONNECTED = 1
    CLOSED = 2
    WAITING_AUTH = 3

cdef int ROUTE = PublishDecision.ROUTE
cdef int DEFERRED = PublishDecision.DEFERRED
cdef int CONNECT = c.CONNECT
cdef dict _HANDLERS = HANDLERS
cdef dict _PACKET_NAMES = dict(c.PACKET_NAMES)
cdef object _Publish = Publish
cdef object _ProtocolError = ProtocolError
cdef object _Message = Message
cdef object _AfterCommit = AfterCommit
cdef object _encode_publish = encode_publish
cdef object _encode_puback = encode_puback
cdef object _encode_pubrec = encode_pubrec


cdef class Connection:
    cdef public object broker, link, framer, client_id, username, session, will, peer
    cdef public object connection_id, close_reason, attrs, protocol
    cdef public int state
    cdef public double keepalive, last_activity, opened_at
    cdef public bint paused
    cdef public long long bytes_in, bytes_out
    cdef public int acks_waiting
    cdef public object pending_connect
    cdef list _held
    cdef list _out
    cdef bint _dirty

    def __init__(self, broker, link, tuple peer, double now, str protocol="mqtt"):
        self.broker = broker
        self.link = link
        self.framer = Framer(broker.config.mqtt.max_packet_size)
        self.state = NEW
        self.client_id = ""
        self.username = None
        self.session = None
        self.will = None
        self.keepalive = 0.0
        self.last_activity = now
        self.opened_at = now
        self.peer = peer
        self.connection_id = os.urandom(16).hex()
        self._out = []
        self._dirty = False
        self.paused = False
        self.close_reason = ""
        self.attrs = {}
        self.protocol = protocol
        self.bytes_in = 0
        self.bytes_out = 0
        self.acks_waiting = 0
        self.pending_connect = None
        self._held = None

    def __repr__(self):
        return f"Connection({self.client_id!r}, {self.peer[0]}:{self.peer[1]})"

    # -- input ----------------------------------------------------------------------------

    def data_received(self, data, double now):
        self.last_activity = now
        self.bytes_in += len(data)
        cdef list items = self.framer.feed(data)
        if self.state == WAITING_AUTH:
            self._hold(items, 0)
            return
        self._receive(items)

    cdef _receive(self, list items):
        cdef int state
        cdef Py_ssize_t index
        for index in range(len(items)):
            item = items[index]
            state = self.state
            if state == CLOSED:
                return
            if state == WAITING_AUTH:
                self._hold(items, index)
                return
            if type(item) is _Publish and state == CONNECTED:
                self.handle_publish(item)
                continue
            if isinstance(item, _ProtocolError):
                self.protocol_error(item)
                return
            if state == NEW:
                if item.type != CONNECT:
                    self.protocol_error(_ProtocolError(
                        f"first packet is {_PACKET_NAMES[item.type]}, not CONNECT",
                        "MQTT-3.1.0-1"))
                    return
                handler = _HANDLERS[CONNECT]
            else:
                handler = _HANDLERS.get(item.type)
                if handler is None or item.type == CONNECT:
                    rule = "MQTT-3.1.0-2" if item.type == CONNECT else "MQTT-4.8.0-1"
                    self.protocol_error(_ProtocolError(
                        f"unexpected {_PACKET_NAMES[item.type]} from a client", rule))
                    return
            self.broker.stats.packets_received[item.type] += 1
            handler(self, item)

    cdef _hold(self, list items, Py_ssize_t start):
        if self._held is None:
            self._held = []
        self._held.extend(items[start:])

    def resume(self):
        held = self._held
        self._held = None
        if held:
            self._receive(held)

    cpdef handle_publish(self, packet):
        cdef int qos, decision
        broker = self.broker
        qos = packet.qos
        broker.stats.received_by_qos[qos] += 1
        if qos == 0:
            if broker.hooks.on_publish(self, packet) == ROUTE:
                if packet.retain:
                    broker.retain(packet.topic, packet.payload, 0)
                fan_out(broker, packet.topic, packet.payload, 0)
            return
        session = self.session
        if qos == 2 and packet.packet_id in session.incoming_qos2:
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
                session.remember_qos2(packet.packet_id)
            if committer.writes != writes:
                self.acks_waiting += 1
                committer.submit(None, _AfterCommit(self, packet))
                return
        elif decision == DEFERRED:
            return
        self.acknowledge(packet)

    cpdef acknowledge(self, packet):
        if self.acks_waiting:
            self.acks_waiting += 1
            self.broker.committer.submit(None, _AfterCommit(self, packet))
        else:
            self.complete(packet)

    def protocol_error(self, error):
        if error.connack >= 0 and self.state == NEW:
            self.send(encode_connack(False, error.connack))
        self.close(error.reason, str(error))

    # -- output ---------------------------------------------------------------------------

    cpdef send(self, bytes data):
        if self.state == CLOSED:
            return
        self._out.append(data)
        if not self._dirty:
            self._dirty = True
            self.broker.want_flush(self)

    def send_publish(self, message, int packet_id, bint dup):
        self.send(_encode_publish(message.topic, message.payload, message.qos, message.retain,
                                  dup, packet_id))
        self.broker.stats.sent_by_qos[message.qos] += 1

    def send_pubrel(self, int packet_id):
        self.send(encode_pubrel(packet_id))

    cpdef complete(self, packet):
        cdef int qos = packet.qos
        if qos == 1:
            self.send(_encode_puback(packet.packet_id))
        elif qos == 2 and self.session is not None:
            self.session.remember_qos2(packet.packet_id)
            self.send(_encode_pubrec(packet.packet_id))

    cpdef flush(self):
        cdef list out = self._out
        self._dirty = False
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = []
        self.bytes_out += len(data)
        self.link.write(data)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self.session is not None:
            self.session.pump()

    # -- closing --------------------------------------------------------------------------

    def close(self, reason, detail=""):
        if self.state == CLOSED:
            return
        self.flush()
        self.state = CLOSED
        self.close_reason = reason
        self.link.close()
        self.broker.connection_closed(self, reason, detail)

    def connection_lost(self):
        if self.state != CLOSED:
            self._out = []
            self.state = CLOSED
            self.close_reason = "ssl_closed"
            self.broker.connection_closed(self, "ssl_closed", "peer closed the connection")

    def deadline(self):
        if self.state == NEW or self.state == WAITING_AUTH:
            return self.opened_at + self.broker.config.mqtt.connect_timeout
        if self.state == CONNECTED and self.keepalive:
            return self.last_activity + self.keepalive
        return None


cpdef fan_out(broker, str topic, bytes payload, int qos):
    cdef dict subscribers = broker.tree.match(topic)
    cdef int granted, qos_out
    cdef long sent = 0, dropped = 0
    cdef bint compiled
    if not subscribers:
        return
    shared = None
    message = None
    for session, granted_obj in subscribers.items():
        granted = granted_obj
        qos_out = qos if qos < granted else granted
        if qos_out == 0:
            conn = session.connection
            if conn is None:
                continue
            compiled = type(conn) is Connection  # C-level access; else a pure twin
            if (<Connection>conn).paused if compiled else conn.paused:
                dropped += 1
                continue
            if shared is None:
                shared = _encode_publish(topic, payload, 0, False, False, 0)
            if compiled:
                (<Connection>conn).send(shared)
            else:
                conn.send(shared)
            sent += 1
        else:
            if message is None or message.qos != qos_out:
                message = _Message(topic, payload, qos_out, False)
            if not session.deliver(message):
                dropped += 1
    stats = broker.stats
    if sent:
        stats.sent_by_qos[0] += sent
    if dropped:
        stats.messages_dropped += dropped
