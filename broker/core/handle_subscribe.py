"""SUBSCRIBE and UNSUBSCRIBE (sections 3.8-3.11).

- MQTT-3.8.4-1..5: one SUBACK return code per filter, in order; a filter already subscribed is
  replaced and its retained messages are sent again; a refused filter gets 0x80.
- MQTT-3.10.4-4/5: UNSUBACK even when nothing was subscribed.
"""

from __future__ import annotations

from broker import _accel
from broker.core.connection import Connection
from broker.mqtt import constants as c
from broker.mqtt.packets import Subscribe, Unsubscribe


def handle_subscribe(conn: Connection, packet: Subscribe) -> None:
    broker = conn.broker
    session = conn.session
    assert session is not None
    codes: list[int] = []
    granted_filters: list[tuple[str, int]] = []
    for topic_filter, qos in packet.topics:
        granted = broker.hooks.authorize_subscribe(conn, topic_filter, qos)
        if granted == c.SUBACK_FAILURE:
            broker.debug(conn, "not_authorized", f"SUBSCRIBE {topic_filter!r} refused")
        else:
            granted = min(granted, qos)
            broker.sessions.subscribe(session, topic_filter, granted)
            granted_filters.append((topic_filter, granted))
        codes.append(granted)
    if granted_filters:
        broker.sessions.save(session)
    conn.send(_accel.encode_suback(packet.packet_id, codes))
    for topic_filter, granted in granted_filters:
        broker.send_retained(session, topic_filter, granted)


def handle_unsubscribe(conn: Connection, packet: Unsubscribe) -> None:
    broker = conn.broker
    session = conn.session
    assert session is not None
    for topic_filter in packet.topics:
        broker.sessions.unsubscribe(session, topic_filter)
    broker.sessions.save(session)
    conn.send(_accel.encode_unsuback(packet.packet_id))
