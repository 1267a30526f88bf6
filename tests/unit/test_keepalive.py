"""broker/transport/keepalive.py: DeadlineWheel closes silent connections (``idle_timeout``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop

from broker.config import Config
from broker.core.broker import Broker, Connection
from broker.core.connection import CLOSED, CONNECTED
from broker.mqtt import codec
from broker.mqtt.packets import Connect, Pingreq
from broker.security.policy import PlainPolicy
from broker.storage.memory_store import MemoryStore
from broker.transport.keepalive import DeadlineWheel
from tests.sansio import MemoryLink, make_config

PINGREQ = codec.encode(Pingreq())


class Loop:
    """A broker on a real uvloop loop with a started DeadlineWheel, like Server.start wires it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config) -> None:
        self.loop = loop
        self.broker = Broker(config, PlainPolicy(config.mqtt), MemoryStore(), loop.call_soon)
        self.wheel = DeadlineWheel(loop)
        self.wheel.start()

    def open(self) -> Connection:  # the class the transport makes
        conn = Connection(self.broker, MemoryLink(), ("127.0.0.1", 1234), self.loop.time())
        assert self.broker.connection_opened(conn)
        self.wheel.watch(conn)
        return conn

    def connect(self, client_id: str, keepalive: int) -> Connection:
        conn = self.open()
        conn.data_received(codec.encode(Connect(client_id, True, keepalive)), self.loop.time())
        assert conn.state == CONNECTED
        return conn


async def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` while the loop runs, until it holds or ``timeout`` seconds pass."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def run(main: Callable[[asyncio.AbstractEventLoop], object]) -> None:
    async def wrapper() -> None:
        await main(asyncio.get_running_loop())  # type: ignore[misc]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(wrapper())


def test_no_connect_closed_after_connect_timeout() -> None:
    """A connection that sends no CONNECT is closed with idle_timeout after connect_timeout."""

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        h = Loop(loop, make_config(connect_timeout=0.5))
        conn = h.open()
        started = loop.time()
        assert await wait_until(lambda: conn.state == CLOSED, 3.0)
        assert conn.close_reason == "idle_timeout"
        assert loop.time() - started >= 0.5
        assert isinstance(conn.link, MemoryLink) and conn.link.closed
        assert h.broker.stats.close_reasons["idle_timeout"] == 1
        h.wheel.stop()

    run(main)


def test_silent_client_closed_active_client_survives() -> None:
    """Keepalive 1 s: the silent client goes after 1.5 s; the pinging one is re-filed and lives
    until it falls silent too."""

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        h = Loop(loop, make_config(connect_timeout=5.0))
        silent = h.connect("silent", keepalive=1)
        active = h.connect("active", keepalive=1)
        started = loop.time()
        pinging = True

        async def ping() -> None:
            while pinging and active.state != CLOSED:
                active.data_received(PINGREQ, loop.time())
                await asyncio.sleep(0.3)

        pinger = asyncio.ensure_future(ping())
        assert await wait_until(lambda: silent.state == CLOSED, 4.0)
        assert silent.close_reason == "idle_timeout"
        assert loop.time() - started >= 1.5
        # The active client outlives another of its own deadlines while it keeps talking.
        assert not await wait_until(lambda: active.state == CLOSED, 1.6)
        assert h.broker.clients == {"active": active}
        pinging = False
        await pinger
        last = active.last_activity
        assert await wait_until(lambda: active.state == CLOSED, 3.5)
        assert active.close_reason == "idle_timeout"
        assert loop.time() - last >= 1.5
        assert h.broker.stats.close_reasons["idle_timeout"] == 2
        h.wheel.stop()

    run(main)


def test_no_keepalive_no_deadline() -> None:
    """Keepalive 0 with default_keepalive 0 means no deadline; the wheel files nothing."""

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        h = Loop(loop, make_config(default_keepalive=0))
        conn = h.connect("c", keepalive=0)
        assert conn.deadline() is None
        before = {slot: list(bucket) for slot, bucket in h.wheel._buckets.items()}
        h.wheel.watch(conn)
        assert {slot: list(bucket) for slot, bucket in h.wheel._buckets.items()} == before
        h.wheel.stop()

    run(main)


def test_closed_connections_are_skipped() -> None:
    """A connection closed before its deadline is not closed again (one close reason)."""

    async def main(loop: asyncio.AbstractEventLoop) -> None:
        h = Loop(loop, make_config(connect_timeout=0.5))
        conn = h.open()
        conn.close("normal")
        assert await wait_until(lambda: not h.wheel._buckets, 3.0)  # its slot was examined
        assert h.broker.stats.close_reasons == {"normal": 1}
        h.wheel.stop()

    run(main)
