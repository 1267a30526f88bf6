"""The dispatch table: packet type -> handler, for packets a connected client may send."""

from broker.core.connection import HANDLERS, Connection
from broker.core.handle_ack import (
    handle_puback,
    handle_pubcomp,
    handle_pubrec,
    handle_pubrel,
)
from broker.core.handle_connect import handle_connect
from broker.core.handle_subscribe import handle_subscribe, handle_unsubscribe
from broker.mqtt import constants as c
from broker.mqtt.packets import Disconnect, Pingreq

PINGRESP = b"\xd0\x00"


def handle_pingreq(conn: Connection, packet: Pingreq) -> None:
    conn.send(PINGRESP)


def handle_disconnect(conn: Connection, packet: Disconnect) -> None:
    # MQTT-3.14.4-3: after DISCONNECT the will is discarded, not published.
    conn.will = None
    conn.close("normal")


HANDLERS.update({
    c.CONNECT: handle_connect,
    c.PUBLISH: lambda conn, packet: conn.handle_publish(packet),
    c.PUBACK: handle_puback,
    c.PUBREC: handle_pubrec,
    c.PUBREL: handle_pubrel,
    c.PUBCOMP: handle_pubcomp,
    c.SUBSCRIBE: handle_subscribe,
    c.UNSUBSCRIBE: handle_unsubscribe,
    c.PINGREQ: handle_pingreq,
    c.DISCONNECT: handle_disconnect,
})
