"""CONNECT (section 3.1): authentication, will, keepalive, takeover and the session.

- MQTT-3.1.3-6: a zero-length client id gets a unique one from the server.
- MQTT-3.1.2-6: CleanSession=1 discards any previous session; MQTT-3.2.2-2/3: session present
  is 1 only when a stored session is resumed.
- MQTT-3.1.2-24: the keepalive is enforced at 1.5x; a keepalive of 0 takes the broker's
  ``mqtt.default_keepalive`` (the connector spec's 300 s), unless that is 0 too.
- MQTT-3.1.4-2: an existing connection with the same client id is closed first.
"""

from __future__ import annotations

import os

from broker import _accel
from broker.core.connection import CONNECTED, NEW, WAITING_AUTH, Connection
from broker.hooks import AUTHENTICATING
from broker.mqtt import constants as c
from broker.mqtt.packets import Connect
from broker.session.session import Message

REFUSAL_REASONS = {
    c.CONNACK_BAD_CREDENTIALS: "bad_credentials",
    c.CONNACK_NOT_AUTHORIZED: "not_authorized",
    c.CONNACK_IDENTIFIER_REJECTED: "identifier_rejected",
    c.CONNACK_SERVER_UNAVAILABLE: "server_unavailable",
}


def handle_connect(conn: Connection, packet: Connect) -> None:
    conn.client_id = packet.client_id or f"auto-{os.urandom(8).hex()}"
    conn.username = packet.username
    code = conn.broker.hooks.authenticate(conn, packet)
    if code == AUTHENTICATING:
        conn.state = WAITING_AUTH
        conn.pending_connect = packet
        return
    _finish_connect(conn, packet, code)


def connect_decided(conn: Connection, code: int) -> None:
    """The hooks' late answer to a CONNECT they returned ``AUTHENTICATING`` for. Ignored when
    the connection has closed meanwhile (the CONNECT deadline, the peer)."""
    if conn.state != WAITING_AUTH:
        return
    packet = conn.pending_connect
    conn.pending_connect = None
    conn.state = NEW
    _finish_connect(conn, packet, code)
    conn.resume()


def _finish_connect(conn: Connection, packet: Connect, code: int) -> None:
    broker = conn.broker
    config = broker.config.mqtt
    if code == 0 and packet.will_topic is not None and not broker.hooks.authorize_will(
        conn, packet.will_topic, packet.will_qos, packet.will_retain
    ):
        code = c.CONNACK_NOT_AUTHORIZED
    if code != 0:
        broker.stats.connections_refused += 1
        if code > 0:
            conn.send(_accel.encode_connack(False, code))
        conn.close(REFUSAL_REASONS.get(code, "refused"), f"CONNACK {code}" if code > 0 else "")
        return
    if packet.will_topic is not None:
        conn.will = Message(packet.will_topic, packet.will_payload, packet.will_qos,
                            packet.will_retain)
    keepalive = packet.keepalive or config.default_keepalive
    conn.keepalive = keepalive * 1.5

    broker.take_over(conn.client_id)
    sessions = broker.sessions
    session = sessions.get(conn.client_id)
    present = False
    if session is not None and (packet.clean_session or session.clean):
        sessions.discard(session)
        session = None
    if session is None:
        session = sessions.create(conn.client_id, packet.clean_session, config.max_inflight,
                                  config.max_queued_messages)
    else:
        present = True
    session.connection = conn
    conn.session = session
    conn.state = CONNECTED
    broker.clients[conn.client_id] = conn
    conn.send(_accel.encode_connack(present, c.CONNACK_ACCEPTED))
    broker.hooks.on_connect(conn)
    if present:
        session.resend()
