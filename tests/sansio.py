"""A broker driven through its sans-I/O boundary: bytes into ``Connection.data_received``, bytes
out of an in-memory ``Link``, and the loop's ``call_soon`` replaced by a list run by hand.

Nothing here imitates broker code: ``MemoryLink`` is the transport side of the ``Link`` protocol
(what ``MqttProtocol`` is in production) and ``SansIO.run`` is the loop turn.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.config import Config, load
from broker.core import broker as broker_module
from broker.core import connection as pure_connection
from broker.core.broker import Broker
from broker.mqtt import codec
from broker.mqtt.errors import ProtocolError
from broker.mqtt.framing import Framer
from broker.mqtt.packets import Connect, Packet
from broker.security.policy import PlainPolicy
from broker.storage.memory_store import MemoryStore

# The connection class the transport makes (compiled twin when it loads) and the reference one.
TRANSPORT_CONNECTION: Any = broker_module.Connection
PURE_CONNECTION: Any = pure_connection.Connection
_connection_class: list[Any] = [TRANSPORT_CONNECTION]


@pytest.fixture(params=["pure", "compiled"])
def each_connection(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Run the test once with the reference Connection and once with the compiled twin
    (skipped, or failed under FLEETGATE_REQUIRE_EXTENSIONS=1, when it did not load)."""
    if request.param == "pure":
        cls = PURE_CONNECTION
    else:
        cls = TRANSPORT_CONNECTION
        if cls is PURE_CONNECTION:
            if os.environ.get("FLEETGATE_REQUIRE_EXTENSIONS") == "1":
                pytest.fail("FLEETGATE_REQUIRE_EXTENSIONS=1 but _speedups.connection did not load")
            pytest.skip("compiled _speedups.connection is not built; run `make build`")
    _connection_class.append(cls)
    yield cls
    _connection_class.pop()


class MemoryLink:
    """The transport end of a connection: records every write and the close."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.writes_after_close = 0  # the real transport drops these; tests may assert on it
        self._framer = Framer(256 * 1024 * 1024)
        self._seen = 0

    def write(self, data: bytes) -> None:
        if self.closed:
            self.writes_after_close += 1
            return
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def packets(self) -> list[Packet]:
        """Decode the writes made since the last call (the broker must only send valid packets)."""
        out: list[Packet] = []
        for data in self.writes[self._seen:]:
            for item in self._framer.feed(data):
                assert not isinstance(item, ProtocolError), f"malformed output: {item}"
                out.append(item)
        self._seen = len(self.writes)
        return out


def make_config(**mqtt: Any) -> Config:
    return load(None, {"mqtt": {"allow_anonymous": True, "sys_interval": 0.0, **mqtt}})


class Client:
    """One connection of the harness with the link it writes to."""

    def __init__(self, harness: SansIO, conn: Any, link: MemoryLink) -> None:
        self.harness = harness
        self.conn = conn
        self.link = link

    def send(self, data: bytes | Packet, now: float = 0.0) -> None:
        """Feed bytes (or an encoded packet) to the connection, then finish the loop turn."""
        raw = data if isinstance(data, bytes) else codec.encode(data)
        self.conn.data_received(raw, now)
        self.harness.run()

    def packets(self) -> list[Packet]:
        return self.link.packets()

    def lose(self) -> None:
        """The peer vanished: the transport is closed and tells the connection."""
        self.link.closed = True
        self.conn.connection_lost()
        self.harness.run()


class SansIO:
    """A ``Broker`` with a MemoryStore, PlainPolicy and a hand-run ``schedule``.

    Connections are of the class the transport makes, or the one ``each_connection`` selects.
    """

    def __init__(self, config: Config | None = None, **mqtt: Any) -> None:
        self.connection_class = _connection_class[-1]
        self.config = config or make_config(**mqtt)
        self.scheduled: list[Callable[[], None]] = []
        self.broker = Broker(self.config, PlainPolicy(self.config.mqtt), MemoryStore(),
                             self.scheduled.append)

    def run(self) -> None:
        """One loop turn: run every callback scheduled so far (and any they schedule)."""
        while self.scheduled:
            callback = self.scheduled.pop(0)
            callback()

    def open(self, now: float = 0.0, peer: tuple[str, int] = ("127.0.0.1", 1234),
             connection_class: Any = None) -> Client:
        link = MemoryLink()
        conn = (connection_class or self.connection_class)(self.broker, link, peer, now)
        self.broker.connection_opened(conn)
        return Client(self, conn, link)

    def connect(self, client_id: str = "", clean: bool = True, keepalive: int = 60,
                now: float = 0.0, **fields: Any) -> Client:
        """Open a connection and complete its CONNECT; the CONNACK is consumed and checked."""
        client = self.open(now)
        client.send(Connect(client_id, clean, keepalive, **fields), now)
        packets = client.packets()
        assert packets and packets[0].type == 2, packets
        assert packets[0].return_code == 0, packets  # type: ignore[attr-defined]
        return client
