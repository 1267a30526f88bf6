"""A raw-bytes MQTT client for integration tests: real sockets, the pure-Python codec, and
deadline-bounded waits (no sleeps)."""

from __future__ import annotations

import socket
import time
from typing import Any

from broker.mqtt import codec
from broker.mqtt.errors import ProtocolError
from broker.mqtt.framing import Framer
from broker.mqtt.packets import Connect, Packet, Puback, Publish, Subscribe


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 rcvbuf: int | None = None) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:  # a small receive window must be set before connecting to take effect
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.framer = Framer(256 * 1024 * 1024)
        self.pending: list[Packet] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, data: bytes | Packet) -> None:
        self.sock.sendall(data if isinstance(data, bytes | bytearray) else codec.encode(data))

    def recv(self, timeout: float | None = None) -> Packet:
        """The next packet from the broker; ``Closed`` if it closed, TimeoutError if silent."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no packet from the broker")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no packet from the broker") from None
            except ConnectionResetError:
                raise Closed() from None
            if not data:
                raise Closed()
            for item in self.framer.feed(data):
                if isinstance(item, ProtocolError):
                    raise AssertionError(f"broker sent a malformed packet: {item}")
                self.pending.append(item)
        return self.pending.pop(0)

    def expect(self, packet: Packet, timeout: float | None = None) -> None:
        got = self.recv(timeout)
        assert got == packet, f"expected {packet!r}, got {got!r}"

    def expect_closed(self, timeout: float | None = None) -> None:
        """The broker closes the connection (after any packets it sent first)."""
        try:
            while True:
                got = self.recv(timeout)
                if not isinstance(got, Publish):
                    raise AssertionError(f"expected close, got {got!r}")
        except Closed:
            return

    def expect_silence(self, seconds: float = 0.3) -> None:
        try:
            got = self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {got!r}")

    # -- conveniences ---------------------------------------------------------------------

    def connect(self, client_id: str = "", clean: bool = True, keepalive: int = 60,
                expect_rc: int = 0, session_present: bool = False, **fields: Any) -> None:
        self.send(Connect(client_id, clean, keepalive, **fields))
        got = self.recv()
        assert got.type == 2, f"expected CONNACK, got {got!r}"
        assert got.return_code == expect_rc, f"CONNACK {got.return_code}, expected {expect_rc}"  # type: ignore[attr-defined]
        assert got.session_present == session_present, f"session present {got!r}"  # type: ignore[attr-defined]

    def subscribe(self, topic_filter: str, qos: int = 0, packet_id: int = 1) -> list[int]:
        self.send(Subscribe(packet_id, [(topic_filter, qos)]))
        got = self.recv()
        assert got.type == 9 and got.packet_id == packet_id, got  # type: ignore[attr-defined]
        return got.return_codes  # type: ignore[attr-defined]

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
                packet_id: int = 0, dup: bool = False) -> None:
        self.send(codec.encode_publish(topic, payload, qos, retain, dup, packet_id))


def connected(host: str, port: int, client_id: str = "", rcvbuf: int | None = None,
              **kwargs: Any) -> RawClient:
    client = RawClient(host, port, rcvbuf=rcvbuf)
    client.connect(client_id, **kwargs)
    return client


def provision_mqtt(host: str, port: int, identity: str) -> str:
    """connector-spec §3.4: anonymous CONNECT, PUBLISH ``$provision/<identity>`` at QoS 1; the
    40-character token comes back on the same topic."""
    with RawClient(host, port) as client:
        client.connect()
        client.publish(f"$provision/{identity}", b"", qos=1, packet_id=1)
        client.expect(Puback(1))
        reply = client.recv()
        assert isinstance(reply, Publish) and reply.topic == f"$provision/{identity}", reply
    token = reply.payload.decode()
    assert len(token) == 40 and token.isalnum(), token
    return token
