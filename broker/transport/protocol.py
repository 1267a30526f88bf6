"""asyncio glue for one MQTT connection: the only place sockets meet the sans-I/O core.

The protocol is the connection's ``Link``. Back-pressure: the transport's write buffer above
``mqtt.write_high_water`` pauses the connection (QoS 0 to it is dropped and counted, QoS 1/2
waits in its session); the broker itself never waits for a slow client.

Over TLS (broker/transport/tls.py) the transport is a ``TlsTransport``: the connection gets
``attrs["tls"]`` (a ``TlsInfo``) and protocol name ``mqtts`` before any packet, and its CONNECT
deadline counts from the TCP open, the handshake included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from broker.core.broker import Connection
from broker.transport.tls import OPENED_AT, TLS_INFO, TlsError, TlsInfo

if TYPE_CHECKING:
    from broker.core.broker import Broker
    from broker.transport.keepalive import DeadlineWheel


class _ClosedLink:
    """The link of a connection whose transport is gone: writes and closes are no-ops."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


_CLOSED_LINK = _ClosedLink()


class MqttProtocol(asyncio.Protocol):
    __slots__ = ("_broker", "_wheel", "_time", "transport", "conn")

    def __init__(self, broker: Broker, wheel: DeadlineWheel, time: Callable[[], float]) -> None:
        self._broker = broker
        self._wheel = wheel
        self._time = time
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        high = self._broker.config.mqtt.write_high_water
        transport.set_write_buffer_limits(high=high, low=high // 4)  # type: ignore[attr-defined]
        tls = transport.get_extra_info(TLS_INFO)
        if tls is None:
            conn = Connection(self._broker, self, (peer[0], peer[1]), self._time())
        else:
            opened = transport.get_extra_info(OPENED_AT)
            conn = Connection(self._broker, self, (peer[0], peer[1]),
                              self._time() if opened is None else opened, "mqtts")
            conn.attrs["tls"] = tls
        self.conn = conn
        if self._broker.connection_opened(conn):
            self._wheel.watch(conn)

    def data_received(self, data: bytes) -> None:
        self.conn.data_received(data, self._time())  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if conn is not None:
            if isinstance(exc, TlsError):
                conn.close("tls_error", str(exc))  # a bad record or alert, not a plain hang-up
            else:
                conn.connection_lost()
            # Break the protocol <-> connection <-> transport cycles now, so a closed
            # connection is freed by reference counting instead of waiting for the cyclic GC.
            conn.link = _CLOSED_LINK
        self.conn = None
        self.transport = None

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.resume_writing()

    # Link
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def report_tls_failure(broker: Broker, peer: tuple[str, int], info: TlsInfo | None,
                       reason: str, detail: str, now: float) -> None:
    """A TLS connection that failed before MQTT began (``tls_error``, ``idle_timeout`` without
    a handshake, ``ssl_closed`` mid-handshake): counted and logged as a connection closed with
    that reason, so the hooks' debug log gets it with the client's address (§8.2)."""
    conn = Connection(broker, _CLOSED_LINK, peer, now, "mqtts")
    if info is not None:
        conn.attrs["tls"] = info  # the SNI, if the client got that far: names the connector
    if broker.connection_opened(conn):
        conn.close(reason, detail)
