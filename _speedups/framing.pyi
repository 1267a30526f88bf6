"""Type stub for the Cython twin of ``broker.mqtt.framing`` (same names, same behaviour)."""

from typing_extensions import Buffer

from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import Packet

class Framer:
    max_packet_size: int
    failed: bool

    def __init__(self, max_packet_size: int = 2 * 1024 * 1024) -> None: ...
    def buffered(self) -> int: ...
    def feed(self, data: Buffer) -> list[Packet | ProtocolError]: ...
