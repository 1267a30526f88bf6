"""Shared fixtures: a real broker on a free 127.0.0.1 port, run on uvloop in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.config import Config, load
from broker.gateway.mqtt import GatewayHooks
from broker.gateway.service import Device2Service
from broker.security.policy import PlainPolicy
from broker.storage import Store
from broker.storage.commit import DrainedStore, GroupCommitter
from broker.transport.server import Server

FAST_SCRYPT = 1024  # the same format and checks as the default cost, a fraction of the CPU


@dataclass
class RunningBroker:
    server: Server
    loop: asyncio.AbstractEventLoop
    host: str
    port: int

    @property
    def broker(self) -> Any:
        return self.server.broker

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the broker's loop thread and return its result (to inspect state)."""
        async def wrapper() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(5)

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Poll ``predicate`` on the broker's loop until it is truthy; fail at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.call(predicate)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not reached within {timeout} s")
            time.sleep(0.005)

    def close_reason_count(self, reason: str) -> int:
        """How many connections were closed for ``reason`` (broker.stats.close_reasons)."""
        return int(self.call(lambda: self.broker.stats.close_reasons[reason]))

    def offline(self, client_id: str, timeout: float = 5.0) -> None:
        """Wait until the broker has processed the end of ``client_id``'s connection."""
        self.wait(lambda: client_id not in self.broker.clients, timeout)


def start_broker(config: Config, **server_args: Any) -> tuple[RunningBroker, Callable[[], None]]:
    import uvloop

    loop = uvloop.new_event_loop()
    server = Server(config, **server_args)
    ready = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # reported to the test below
            errors.append(error)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="broker", daemon=True)
    thread.start()
    assert ready.wait(10), "broker did not start"
    if errors:
        raise errors[0]
    host, port = server.addresses["mqtt"]

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return RunningBroker(server, loop, host, port), stop


def make_config(tmp_path: Path, **mqtt: Any) -> Config:
    """Plain MQTT on a free loopback port; the TLS listeners off (their defaults are public
    addresses): a test that wants one sets ``config.listeners.mqtt_tls = "127.0.0.1:0"``."""
    overrides: dict[str, Any] = {
        "server": {"data": str(tmp_path / "data"), "plain_mqtt": True},
        "listeners": {"mqtt": "127.0.0.1:0", "mqtt_tls": "", "https": ""},
        "mqtt": {"allow_anonymous": True, "sys_interval": 0.0, **mqtt},
    }
    return load(None, overrides)


def start_gateway(config: Config, **service_args: Any
                  ) -> tuple[RunningBroker, GatewayHooks, Callable[[], None]]:
    """A gateway broker wired as ``broker.gateway.app`` does, with a cheap scrypt;
    ``service_args`` go to ``Device2Service`` (``content_dir=…``)."""

    def hooks(store: Store, committer: GroupCommitter) -> GatewayHooks:
        service = Device2Service(DrainedStore(store, committer), password_cost=FAST_SCRYPT,
                                 **service_args)
        return GatewayHooks(service, PlainPolicy(config.mqtt))

    running, stop = start_broker(config, hooks_factory=hooks)
    gateway = running.server.hooks
    assert isinstance(gateway, GatewayHooks)
    return running, gateway, stop


BrokerFactory = Callable[..., RunningBroker]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., RunningBroker]]:
    """Start brokers with settings of the test's choosing: ``broker_factory(max_inflight=2)``."""
    stops: list[Callable[[], None]] = []

    def factory(**mqtt: Any) -> RunningBroker:
        running, stop = start_broker(make_config(tmp_path, **mqtt))
        stops.append(stop)
        return running

    yield factory
    for stop in reversed(stops):
        stop()


@pytest.fixture
def mqtt_broker(broker_factory: Callable[..., RunningBroker]) -> RunningBroker:
    """A broker with defaults, anonymous access on, $SYS off."""
    return broker_factory()
