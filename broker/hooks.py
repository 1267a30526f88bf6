"""The interface through which a layer above the MQTT core (the IoT Connector, or the built-in
plain-broker policy) authenticates clients, authorizes publish/subscribe and sees messages.

The core calls these and never imports what implements them. Every method is synchronous: the
hot path has no per-message ``await``. A hook that needs durable work before a QoS 1 PUBLISH is
acknowledged returns ``DEFERRED`` from ``on_publish`` and later calls ``client.complete(packet)``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from broker.core.broker import Broker
    from broker.core.connection import Connection
    from broker.mqtt.packets import Connect, Publish


# ``authenticate`` may answer this and decide later (slow password hashing off the loop) by
# calling ``broker.core.handle_connect.connect_decided(client, code)``.
AUTHENTICATING = -2


class PublishDecision(IntEnum):
    ROUTE = 0  # the core routes it to subscribers and acknowledges it
    HANDLED = 1  # the hook consumed it; the core acknowledges it and does not route it
    DEFERRED = 2  # the hook consumed it and acknowledges it itself (after a durable commit)
    DENIED = 3  # not allowed: acknowledged (3.1.1 has no negative ack) and dropped


class BrokerHooks(Protocol):
    def attach(self, broker: Broker) -> None:
        """Called once, when the broker these hooks serve exists (to publish from outside a
        client's packet, e.g. events to applications)."""
        ...

    def detach(self) -> None:
        """Called once when the server stops, before the store closes (stop timers)."""
        ...

    def authenticate(self, client: Connection, packet: Connect) -> int:
        """CONNACK return code: 0 accepts; 4 bad credentials; 5 not authorized.

        A negative value closes the connection without any CONNACK (an ignored device), except
        ``AUTHENTICATING``: the decision comes later through ``connect_decided``; meanwhile the
        client's further packets wait, and the CONNECT deadline still runs.
        """
        ...

    def on_publish(self, client: Connection, packet: Publish) -> PublishDecision: ...

    def authorize_subscribe(self, client: Connection, topic_filter: str, qos: int) -> int:
        """Granted QoS (≤ requested) or 0x80 to refuse this filter."""
        ...

    def authorize_will(self, client: Connection, topic: str, qos: int, retain: bool) -> bool: ...

    def on_connect(self, client: Connection) -> None: ...

    def on_disconnect(self, client: Connection, reason: str) -> None: ...

    def on_debug(self, client: Connection | None, reason: str, detail: str) -> None:
        """Every refusal and close reason of the debug log (connector-spec section 8.2)."""
        ...
