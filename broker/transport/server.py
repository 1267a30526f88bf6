"""Runs the gateway: the broker core, its listeners and timers on one uvloop event loop.

``Server.start`` opens every configured listener; ``Server.stop`` closes listeners, then
connections (reason ``server_shutdown``), then the store. ``run`` wires SIGTERM/SIGINT to a
graceful stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from pathlib import Path

from broker.config import Config, parse_address
from broker.core.broker import Broker
from broker.core.sys_topics import publish_sys
from broker.hooks import BrokerHooks
from broker.security.policy import PlainPolicy
from broker.storage import Store
from broker.storage.memory_store import MemoryStore
from broker.transport.keepalive import DeadlineWheel
from broker.transport.protocol import MqttProtocol

log = logging.getLogger("fleetgate")


class Server:
    def __init__(self, config: Config, hooks: BrokerHooks | None = None,
                 store: Store | None = None) -> None:
        self.config = config
        self.hooks = hooks or PlainPolicy(config.mqtt)
        self.store = store or MemoryStore()
        self.broker: Broker | None = None
        self.listeners: list[asyncio.AbstractServer] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        self._wheel: DeadlineWheel | None = None
        self._sys_handle: asyncio.TimerHandle | None = None
        self._started = time.monotonic()
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        Path(self.config.server.data).mkdir(parents=True, exist_ok=True)
        self.broker = Broker(self.config, self.hooks, self.store, loop.call_soon)
        self._wheel = DeadlineWheel(loop)
        self._wheel.start()
        server = self.config.server
        if (server.devmode or server.plain_mqtt) and self.config.listeners.mqtt:
            await self._listen("mqtt", self.config.listeners.mqtt)
        if self.config.mqtt.sys_interval > 0:
            self._publish_sys()

    async def _listen(self, name: str, address: str) -> None:
        loop = asyncio.get_running_loop()
        host, port = parse_address(address, f"listeners.{name}")
        broker, wheel, clock = self.broker, self._wheel, loop.time
        assert broker is not None and wheel is not None
        server = await loop.create_server(
            lambda: MqttProtocol(broker, wheel, clock), host, port, backlog=4096,
            reuse_address=True,
        )
        self.listeners.append(server)
        sockname = server.sockets[0].getsockname()
        self.addresses[name] = (sockname[0], sockname[1])
        log.info("%s listening on %s:%d", name, sockname[0], sockname[1])

    def _publish_sys(self) -> None:
        assert self.broker is not None
        publish_sys(self.broker, time.monotonic() - self._started)
        loop = asyncio.get_running_loop()
        self._sys_handle = loop.call_later(self.config.mqtt.sys_interval, self._publish_sys)

    async def stop(self) -> None:
        for server in self.listeners:
            server.close()
        if self._sys_handle is not None:
            self._sys_handle.cancel()
        if self._wheel is not None:
            self._wheel.stop()
        if self.broker is not None:
            self.broker.close_all()
        for server in self.listeners:
            await server.wait_closed()
        await asyncio.sleep(0)  # let transports run their close callbacks
        self.store.close()
        self.stopped.set()


async def serve(config: Config) -> None:
    server = Server(config)
    await server.start()
    # What start made lives as long as the process: keep it out of cyclic-GC passes, and let
    # generation 0 grow larger, since closed connections are freed by reference counting.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"fleetgate ready: {', '.join(f'{k} {h}:{p}' for k, (h, p) in server.addresses.items())}",
          flush=True)
    await stopping.wait()
    log.info("stopping")
    await server.stop()


def run(config: Config) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio still works
        asyncio.run(serve(config))
        return
    uvloop.run(serve(config))
