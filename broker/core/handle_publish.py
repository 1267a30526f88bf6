"""PUBLISH from a client and the acknowledgements of both QoS flows (sections 3.3-3.7, 4.3).

- MQTT-4.3.2-2: a QoS 1 PUBLISH is answered with PUBACK (after the hook's durable work when it
  defers); MQTT-4.3.3-2: QoS 2 with PUBREC, PUBREL with PUBCOMP.
- QoS 2 exactly once: a packet identifier seen before its PUBREL is acknowledged again but the
  message is not routed again.
"""

from __future__ import annotations

from broker import _accel
from broker.core.connection import Connection
from broker.hooks import PublishDecision
from broker.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel

ROUTE = PublishDecision.ROUTE
DEFERRED = PublishDecision.DEFERRED
encode_pubrec = _accel.encode_pubrec


def handle_publish(conn: Connection, packet: Publish) -> None:
    broker = conn.broker
    broker.stats.messages_received += 1
    qos = packet.qos
    if qos == 2 and packet.packet_id in conn.session.incoming_qos2:  # type: ignore[union-attr]
        conn.send(encode_pubrec(packet.packet_id))
        return
    decision = broker.hooks.on_publish(conn, packet)
    if decision == ROUTE:
        broker.publish(packet.topic, packet.payload, qos, packet.retain)
    elif decision == DEFERRED:
        return
    conn.complete(packet)


def handle_puback(conn: Connection, packet: Puback) -> None:
    conn.session.acknowledge(packet.packet_id, 1)  # type: ignore[union-attr]


def handle_pubrec(conn: Connection, packet: Pubrec) -> None:
    # Answer even an unknown id, so a client that kept state we lost can finish its flow.
    conn.session.received(packet.packet_id)  # type: ignore[union-attr]
    conn.send_pubrel(packet.packet_id)


def handle_pubrel(conn: Connection, packet: Pubrel) -> None:
    conn.session.incoming_qos2.discard(packet.packet_id)  # type: ignore[union-attr]
    conn.send(_accel.encode_pubcomp(packet.packet_id))


def handle_pubcomp(conn: Connection, packet: Pubcomp) -> None:
    conn.session.acknowledge(packet.packet_id, 2)  # type: ignore[union-attr]
