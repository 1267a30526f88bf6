"""``$SYS/broker/…`` statistics, published as retained QoS 0 messages every ``sys_interval``.

They are retained in memory only (they describe this run) and only subscriptions whose filter
names ``$SYS`` explicitly receive them (MQTT-4.7.2-1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker import __version__
from broker.session.session import Message

if TYPE_CHECKING:
    from broker.core.broker import Broker


def sys_values(broker: Broker, uptime: float) -> dict[str, str]:
    s = broker.stats
    live_in = sum(conn.bytes_in for conn in broker.connections)
    live_out = sum(conn.bytes_out for conn in broker.connections)
    return {
        "version": f"fleetgate {__version__}",
        "uptime": f"{int(uptime)} seconds",
        "clients/connected": str(len(broker.clients)),
        "clients/total": str(len(broker.sessions)),
        "clients/maximum": str(broker.config.mqtt.max_connections),
        "connections/total": str(s.connections_total),
        "messages/received": str(s.messages_received),
        "messages/sent": str(s.messages_sent),
        "messages/dropped": str(s.messages_dropped),
        "bytes/received": str(s.bytes_received + live_in),
        "bytes/sent": str(s.bytes_sent + live_out),
        "subscriptions/count": str(len(broker.tree)),
        "retained messages/count": str(len(broker.retained)),
        "store/commits": str(broker.committer.commits),
        "store/writes": str(broker.committer.ops_committed),
    }


def publish_sys(broker: Broker, uptime: float) -> None:
    for name, value in sys_values(broker, uptime).items():
        topic = f"$SYS/broker/{name}"
        payload = value.encode()
        broker.retained.set(Message(topic, payload, 0, True))
        broker.publish(topic, payload, 0, False)
