"""Stream framing, pure-Python reference (the Cython twin is ``_speedups/framing.pyx``).

A ``Framer`` receives the bytes of one connection in arbitrary chunks and returns every complete
packet they finish, decoded, in one call. Rules enforced here:

- MQTT-2.2.3: the remaining length uses at most four bytes (``ff ff ff ff 7f`` is malformed).
- The broker's ``max_packet_size`` (whole packet, header included) closes with
  ``message_too_large`` as soon as the header announces an oversize packet, before buffering it.

After an error the framer returns the packets decoded before it followed by the ``ProtocolError``
as the last list item, and ignores all later input.
"""

from __future__ import annotations

from broker.mqtt.codec import check_fixed_header, decode
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import Packet


class Framer:
    __slots__ = ("_buffer", "max_packet_size", "failed")

    def __init__(self, max_packet_size: int = 2 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self.max_packet_size = max_packet_size
        self.failed = False

    def buffered(self) -> int:
        """Bytes held of a packet not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet | ProtocolError]:
        if self.failed:
            return []
        buf = self._buffer
        buf += data
        out: list[Packet | ProtocolError] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first = buf[pos]
            length = 0
            shift = 0
            i = pos + 1
            complete_header = False
            while i < end:
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                i += 1
                if not byte & 0x80:
                    complete_header = True
                    break
                shift += 7
                if shift > 21:
                    return self._fail(out, ProtocolError(
                        "remaining length longer than four bytes", "MQTT-2.2.3"))
            if not complete_header:
                break
            if i - pos + length > self.max_packet_size:
                return self._fail(out, ProtocolError(
                    f"packet of {i - pos + length} bytes exceeds the limit of "
                    f"{self.max_packet_size}", "", "message_too_large"))
            if end - i < length:
                try:
                    check_fixed_header(first)  # refuse garbage before waiting for its body
                except ProtocolError as error:
                    return self._fail(out, error)
                break
            try:
                out.append(decode(first, bytes(buf[i : i + length])))
            except ProtocolError as error:
                return self._fail(out, error)
            pos = i + length
        if pos:
            del buf[:pos]
        return out

    def _fail(
        self, out: list[Packet | ProtocolError], error: ProtocolError
    ) -> list[Packet | ProtocolError]:
        self.failed = True
        self._buffer.clear()
        out.append(error)
        return out
