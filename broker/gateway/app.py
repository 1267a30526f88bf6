"""Wires the IoT Connector onto the broker: the Device2 service on the server's store and the
gateway's hooks in front of the plain-broker policy."""

from __future__ import annotations

from collections.abc import Callable

from broker.config import Config
from broker.gateway.mqtt import GatewayHooks
from broker.gateway.service import Device2Service
from broker.security.policy import PlainPolicy
from broker.storage import Store


def gateway_hooks(config: Config) -> Callable[[Store], GatewayHooks]:
    """A hooks factory for ``Server``: called with the opened store."""

    def make(store: Store) -> GatewayHooks:
        service = Device2Service(store, domain=config.server.domain)
        return GatewayHooks(service, PlainPolicy(config.mqtt))

    return make
