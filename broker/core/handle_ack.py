"""The acknowledgements of both QoS flows (sections 3.4-3.7, 4.3).

PUBLISH itself is handled by ``Connection.handle_publish``, the hot path. MQTT-4.3.3-2: PUBREL
is answered with PUBCOMP; a PUBREC for an outgoing QoS 2 message with PUBREL.
"""

from __future__ import annotations

from broker import _accel
from broker.core.connection import Connection
from broker.mqtt.packets import Puback, Pubcomp, Pubrec, Pubrel


def handle_puback(conn: Connection, packet: Puback) -> None:
    conn.session.acknowledge(packet.packet_id, 1)  # type: ignore[union-attr]


def handle_pubrec(conn: Connection, packet: Pubrec) -> None:
    # Answer even an unknown id, so a client that kept state we lost can finish its flow.
    conn.session.received(packet.packet_id)  # type: ignore[union-attr]
    conn.send_pubrel(packet.packet_id)


def handle_pubrel(conn: Connection, packet: Pubrel) -> None:
    conn.session.release_qos2(packet.packet_id)  # type: ignore[union-attr]
    conn.send(_accel.encode_pubcomp(packet.packet_id))


def handle_pubcomp(conn: Connection, packet: Pubcomp) -> None:
    conn.session.acknowledge(packet.packet_id, 2)  # type: ignore[union-attr]
