"""The acknowledgements of both QoS flows (sections 3.4-3.7, 4.3).

PUBLISH itself is handled by ``Connection.handle_publish``, the hot path. MQTT-4.3.3-2: PUBREL
is answered with PUBCOMP; a PUBREC for an outgoing QoS 2 message with PUBREL. For a persistent
session the PUBCOMP waits for the commit that forgets the packet identifier: answered earlier, a
crash could leave the identifier stored and a new PUBLISH reusing it would be taken as a duplicate.
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


class SendAfterCommit:
    """A packet for ``conn`` held back until the commit; a failed commit closes ``conn``."""

    __slots__ = ("conn", "data")

    def __init__(self, conn: Connection, data: bytes) -> None:
        self.conn = conn
        self.data = data

    def __call__(self) -> None:
        self.conn.send(self.data)


def handle_pubrel(conn: Connection, packet: Pubrel) -> None:
    committer = conn.broker.committer
    writes = committer.writes
    conn.session.release_qos2(packet.packet_id)  # type: ignore[union-attr]
    pubcomp = _accel.encode_pubcomp(packet.packet_id)
    if committer.writes != writes:
        committer.submit(None, SendAfterCommit(conn, pubcomp))
    else:
        conn.send(pubcomp)


def handle_pubcomp(conn: Connection, packet: Pubcomp) -> None:
    conn.session.acknowledge(packet.packet_id, 2)  # type: ignore[union-attr]
