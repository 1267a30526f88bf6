"""Runs the gateway: the broker core, its listeners and timers on one uvloop event loop.

``Server.start`` opens the store (LMDB at ``<data>/lmdb`` unless ``storage.backend = "memory"``)
and every configured listener; ``Server.stop`` closes listeners, then connections (reason
``server_shutdown``), then drains the group committer and closes the store. ``run`` wires
SIGTERM/SIGINT to a graceful stop.

The MQTT TLS listener (``listeners.mqtt_tls``, devmode or not) speaks MQTT, or another protocol
by ALPN: ``alpn_protocols`` maps ALPN ids to protocol factories, ``mqtt`` first (also for
clients without ALPN); the HTTP sidecar adds ``http/1.1`` (the core imports no HTTP code).

Where the group committer commits (measured, docs/operations.md): with ``storage.sync = always``
a writer thread commits, so the loop keeps reading while a commit waits for its fsync (about
1.8x the durable QoS 1 throughput of committing on the loop); with ``batch``/``none`` a commit
is a memory copy and the loop commits inline (about 15% faster than handing it to a thread).
``batch`` adds a timer that fsyncs once a second, off the loop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from OpenSSL import SSL

from broker.config import Config, parse_address
from broker.core.broker import Broker
from broker.core.sys_topics import publish_sys
from broker.hooks import BrokerHooks
from broker.security.policy import PlainPolicy
from broker.storage import Store
from broker.storage.commit import GroupCommitter
from broker.storage.lmdb_store import LmdbStore
from broker.storage.memory_store import MemoryStore
from broker.transport.keepalive import DeadlineWheel
from broker.transport.protocol import MqttProtocol, report_tls_failure
from broker.transport.tls import (
    ProtocolFactory,
    TlsInfo,
    TlsListener,
    certificate_files,
    make_context,
)

log = logging.getLogger("fleetgate")


HooksFactory = Callable[[Store, GroupCommitter], BrokerHooks]
# Called once the server is up (the CLI starts the admin API with it); may return a cleanup.
StartedHook = Callable[["Server"], Awaitable[Callable[[], Awaitable[None]] | None]]


class Server:
    """``hooks`` (or ``hooks_factory``, called with the opened store and its group committer:
    the gateway's service lives on them) decide what clients may do; the plain-broker policy
    when neither is given."""

    def __init__(self, config: Config, hooks: BrokerHooks | None = None,
                 store: Store | None = None, hooks_factory: HooksFactory | None = None) -> None:
        self.config = config
        self.hooks = hooks
        self.hooks_factory = hooks_factory
        self.store = store
        self.committer: GroupCommitter | None = None
        self.broker: Broker | None = None
        self.listeners: list[asyncio.AbstractServer] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        # Set by the HTTP sidecar (admin/site.py): the device HTTP application, for /metrics.
        self.device_app: Any = None
        # The MQTT TLS port's protocols by ALPN id; the sidecar adds "http/1.1".
        self.alpn_protocols: dict[str, ProtocolFactory] = {}
        # The server certificate and key files, once a TLS listener needed them.
        self.tls_files: tuple[Path, Path] | None = None
        self.tls_listeners: dict[str, TlsListener] = {}
        self._wheel: DeadlineWheel | None = None
        self._sys_handle: asyncio.TimerHandle | None = None
        self._sync_handle: asyncio.TimerHandle | None = None
        self._syncing: asyncio.Future[None] | None = None
        self._started = time.monotonic()
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        Path(self.config.server.data).mkdir(parents=True, exist_ok=True)
        listeners, tls = self.config.listeners, self.config.tls
        context = None
        if listeners.mqtt_tls or listeners.https:
            # A certificate that cannot be used stops the start before anything opens.
            context = make_context(*self.certificate(), tls.min_version, tls.ciphers)
        storage = self.config.storage
        if self.store is None:
            if storage.backend == "memory":
                self.store = MemoryStore()
            else:
                self.store = LmdbStore(Path(self.config.server.data) / "lmdb", sync=storage.sync,
                                       map_size=storage.map_size)
        # A writer thread pays off only when commits wait for fsync; it reads the store while
        # the loop records the next batch, so only for a store safe across threads (LMDB).
        threaded = isinstance(self.store, LmdbStore) and storage.sync == "always"
        self.committer = GroupCommitter(
            self.store, loop.call_soon,
            call_soon_threadsafe=loop.call_soon_threadsafe if threaded else None)
        if self.hooks is None:
            factory = self.hooks_factory
            self.hooks = (factory(self.store, self.committer) if factory
                          else PlainPolicy(self.config.mqtt))
        self.broker = Broker(self.config, self.hooks, self.store, loop.call_soon, self.committer,
                             offload=self._offload)
        self.hooks.attach(self.broker)
        if storage.sync == "batch":
            self._sync_every_second()
        self._wheel = DeadlineWheel(loop)
        self._wheel.start()
        server = self.config.server
        if (server.devmode or server.plain_mqtt) and self.config.listeners.mqtt:
            await self._listen("mqtt", self.config.listeners.mqtt)
        if listeners.mqtt_tls and context is not None:
            await self._listen_tls("mqtt_tls", listeners.mqtt_tls, context)
        if self.config.mqtt.sys_interval > 0:
            self._publish_sys()

    def _offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work`` in the default thread pool, then ``done(result)`` on the loop."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, work)
        future.add_done_callback(lambda f: done(f.result()))

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

    def certificate(self) -> tuple[Path, Path]:
        """The server certificate and key files (``tls.cert``/``tls.key``, or the self-signed
        pair in ``<data>/tls``, made on first use)."""
        if self.tls_files is None:
            tls, server = self.config.tls, self.config.server
            self.tls_files = certificate_files(tls.cert, tls.key, server.data, server.domain)
        return self.tls_files

    async def _listen_tls(self, name: str, address: str, context: SSL.Context) -> None:
        loop = asyncio.get_running_loop()
        host, port = parse_address(address, f"listeners.{name}")
        broker, wheel, clock = self.broker, self._wheel, loop.time
        assert broker is not None and wheel is not None
        tls = self.config.tls
        self.alpn_protocols["mqtt"] = lambda: MqttProtocol(broker, wheel, clock)

        def failed(peer: tuple[str, int], info: TlsInfo | None, reason: str,
                   detail: str) -> None:
            report_tls_failure(broker, peer, info, reason, detail, clock())

        # The CONNECT deadline counts from the TCP open: a handshake cannot take longer.
        timeout = min(tls.handshake_timeout, self.config.mqtt.connect_timeout)
        listener = TlsListener(context, self.alpn_protocols, timeout, failed)
        server = await loop.create_server(listener, host, port, backlog=4096,
                                          reuse_address=True)
        self.listeners.append(server)
        self.tls_listeners[name] = listener
        sockname = server.sockets[0].getsockname()
        self.addresses[name] = (sockname[0], sockname[1])
        log.info("%s listening on %s:%d (TLS, ALPN %s)", name, sockname[0], sockname[1],
                 "/".join(self.alpn_protocols))

    def _sync_every_second(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.store is not None
        if self._syncing is None or self._syncing.done():  # an fsync may outlast a second
            self._syncing = loop.run_in_executor(None, self.store.flush)
        self._sync_handle = loop.call_later(1.0, self._sync_every_second)

    def _publish_sys(self) -> None:
        assert self.broker is not None
        publish_sys(self.broker, time.monotonic() - self._started)
        loop = asyncio.get_running_loop()
        self._sys_handle = loop.call_later(self.config.mqtt.sys_interval, self._publish_sys)

    async def stop(self) -> None:
        for server in self.listeners:
            server.close()
        for listener in self.tls_listeners.values():
            listener.close_handshaking()
        if self._sys_handle is not None:
            self._sys_handle.cancel()
        if self._sync_handle is not None:
            self._sync_handle.cancel()
        if self._wheel is not None:
            self._wheel.stop()
        if self.hooks is not None:
            self.hooks.detach()
        if self.broker is not None:
            self.broker.close_all()
        for server in self.listeners:
            await server.wait_closed()
        await asyncio.sleep(0)  # let transports run their close callbacks
        if self._syncing is not None:
            await self._syncing  # the store must not close under a running fsync
        if self.committer is not None:
            # Commit what the last turns submitted (wills, session ends), then stop the writer.
            self.committer.close()
            await asyncio.sleep(0)  # deliver its last callbacks (to closed connections: no-ops)
            c = self.committer
            log.info("store: %d commits, %d batches, %d writes, %d acknowledgements after commit",
                     c.commits, c.batches_committed, c.ops_committed, c.dones_run)
        if self.store is not None:
            self.store.close()
        self.stopped.set()


async def serve(config: Config, hooks_factory: HooksFactory | None = None,
                on_started: StartedHook | None = None) -> None:
    server = Server(config, hooks_factory=hooks_factory)
    await server.start()
    cleanup = None
    if on_started is not None:
        try:
            cleanup = await on_started(server)
        except BaseException:
            await server.stop()
            raise
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
    if cleanup is not None:
        await cleanup()
    await server.stop()


def run(config: Config, hooks_factory: HooksFactory | None = None,
        on_started: StartedHook | None = None) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio still works
        asyncio.run(serve(config, hooks_factory, on_started))
        return
    uvloop.run(serve(config, hooks_factory, on_started))
