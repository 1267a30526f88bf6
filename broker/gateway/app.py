"""Wires the IoT Connector onto the broker: the Device2 service on the server's store and the
gateway's hooks in front of the plain-broker policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from broker.config import Config
from broker.gateway.mqtt import GatewayHooks
from broker.gateway.service import Device2Service
from broker.security.policy import PlainPolicy
from broker.storage import Store
from broker.storage.commit import DrainedStore, GroupCommitter


def gateway_hooks(config: Config) -> Callable[[Store, GroupCommitter], GatewayHooks]:
    """A hooks factory for ``Server``, called with the opened store and its committer. Device
    writes are grouped by the committer; the service's other operations see the store drained
    of them first, so they never miss or overwrite a device write still being committed."""

    def make(store: Store, committer: GroupCommitter) -> GatewayHooks:
        service = Device2Service(
            DrainedStore(store, committer), domain=config.server.domain,
            content_dir=Path(config.server.data) / "content",
            content_max_size=config.content.max_size)
        return GatewayHooks(service, PlainPolicy(config.mqtt))

    return make
