"""MQTT 3.1.1 packet codec, pure-Python reference (the Cython twin is ``_speedups/codec.pyx``).

``decode(first_byte, body)`` turns one complete packet (fixed-header byte plus the bytes its
remaining length covers) into a packet object, enforcing the spec's validation rules:

- MQTT-2.2.2-1/2: reserved fixed-header flags (PUBREL/SUBSCRIBE/UNSUBSCRIBE ``0010``, else
  ``0000``).
- MQTT-3.3.1-4: PUBLISH QoS 3 is malformed; MQTT-3.3.1-2: DUP is 0 for QoS 0.
- MQTT-2.3.1-1: packet identifiers of QoS>0 PUBLISH, SUBSCRIBE, UNSUBSCRIBE, acks are non-zero.
- MQTT-1.5.3-1/2: strings are well-formed UTF-8 without U+0000.
- MQTT-3.1.2-1/2/3/11/13/14/15/22, MQTT-3.1.3-8: CONNECT header and flag consistency.
- MQTT-3.8.3-3/4, MQTT-3.10.3-2: SUBSCRIBE/UNSUBSCRIBE need a payload; reserved QoS bits are 0.

Example: ``decode(0x30, b"\\x00\\x03a/b" + b"hi")`` is ``Publish("a/b", b"hi")``; the same body
after ``0x36`` (QoS 3) raises ``ProtocolError(rule="MQTT-3.3.1-4")``.
"""

from __future__ import annotations

from collections.abc import Callable

from broker.mqtt import constants as c
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from broker.mqtt.topics import validate_topic_filter, validate_topic_name

# ---------------------------------------------------------------------------------------------
# Decoding


def _malformed(message: str, rule: str = "") -> ProtocolError:
    return ProtocolError(message, rule)


def _string(body: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(body):
        raise _malformed("truncated string length", "MQTT-1.5.3")
    n = (body[pos] << 8) | body[pos + 1]
    end = pos + 2 + n
    if end > len(body):
        raise _malformed("string runs past the packet", "MQTT-1.5.3")
    raw = body[pos + 2 : end]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("ill-formed UTF-8 string", "MQTT-1.5.3-1") from None
    if "\x00" in text:
        raise _malformed("U+0000 in a string", "MQTT-1.5.3-2")
    return text, end


def _binary(body: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(body):
        raise _malformed("truncated binary length", "MQTT-1.5.3")
    n = (body[pos] << 8) | body[pos + 1]
    end = pos + 2 + n
    if end > len(body):
        raise _malformed("binary data runs past the packet", "MQTT-1.5.3")
    return bytes(body[pos + 2 : end]), end


def _packet_id(body: bytes, pos: int) -> int:
    if pos + 2 > len(body):
        raise _malformed("truncated packet identifier", "MQTT-2.3.1")
    pid = (body[pos] << 8) | body[pos + 1]
    if pid == 0:
        raise _malformed("packet identifier 0", "MQTT-2.3.1-1")
    return pid


def _decode_connect(flags: int, body: bytes) -> Connect:
    name, pos = _string(body, 0)
    if name == "MQIsdp":  # MQTT 3.1 clients get a readable refusal rather than a bare close
        raise ProtocolError(
            "MQTT 3.1 is not supported", "MQTT-3.1.2-2", connack=c.CONNACK_UNACCEPTABLE_PROTOCOL
        )
    if name != c.PROTOCOL_NAME:
        raise _malformed(f"protocol name {name!r} is not 'MQTT'", "MQTT-3.1.2-1")
    if pos + 4 > len(body):
        raise _malformed("truncated CONNECT variable header", "MQTT-3.1.2")
    level = body[pos]
    cflags = body[pos + 1]
    keepalive = (body[pos + 2] << 8) | body[pos + 3]
    pos += 4
    if level != c.PROTOCOL_LEVEL:
        raise ProtocolError(
            f"unsupported protocol level {level}", "MQTT-3.1.2-2",
            connack=c.CONNACK_UNACCEPTABLE_PROTOCOL,
        )
    if cflags & 0x01:
        raise _malformed("reserved CONNECT flag set", "MQTT-3.1.2-3")
    clean = bool(cflags & 0x02)
    will = bool(cflags & 0x04)
    will_qos = (cflags >> 3) & 0x03
    will_retain = bool(cflags & 0x20)
    has_password = bool(cflags & 0x40)
    has_username = bool(cflags & 0x80)
    if not will and will_qos:
        raise _malformed("will QoS set without the will flag", "MQTT-3.1.2-13")
    if not will and will_retain:
        raise _malformed("will retain set without the will flag", "MQTT-3.1.2-15")
    if will_qos == 3:
        raise _malformed("will QoS 3", "MQTT-3.1.2-14")
    if has_password and not has_username:
        raise _malformed("password flag without username flag", "MQTT-3.1.2-22")
    client_id, pos = _string(body, pos)
    will_topic = None
    will_payload = b""
    if will:
        will_topic, pos = _string(body, pos)
        validate_topic_name(will_topic)
        will_payload, pos = _binary(body, pos)
    username = None
    password = None
    if has_username:
        username, pos = _string(body, pos)
    if has_password:
        password, pos = _binary(body, pos)
    if pos != len(body):
        raise _malformed("trailing bytes after CONNECT payload", "MQTT-3.1.3")
    if not client_id and not clean:
        raise ProtocolError(
            "zero-length client id needs clean session", "MQTT-3.1.3-8",
            connack=c.CONNACK_IDENTIFIER_REJECTED,
        )
    return Connect(
        client_id, clean, keepalive, username, password, will_topic, will_payload, will_qos,
        will_retain, name, level,
    )


def _decode_connack(flags: int, body: bytes) -> Connack:
    if len(body) != 2 or body[0] & 0xFE:
        raise _malformed("malformed CONNACK", "MQTT-3.2.2-1")
    return Connack(bool(body[0] & 1), body[1])


def _decode_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03  # 3 and DUP on QoS 0 were refused by check_fixed_header
    dup = bool(flags & 0x08)
    topic, pos = _string(body, 0)
    validate_topic_name(topic)
    packet_id = 0
    if qos:
        packet_id = _packet_id(body, pos)
        pos += 2
    return Publish(topic, bytes(body[pos:]), qos, bool(flags & 0x01), dup, packet_id)


def _id_only(
    cls: type[Puback | Pubrec | Pubrel | Pubcomp | Unsuback],
) -> Callable[[int, bytes], Packet]:
    def decode_ack(flags: int, body: bytes) -> Packet:
        if len(body) != 2:
            raise _malformed(f"{c.PACKET_NAMES[cls.type]} remaining length is not 2", "MQTT-2.3.1")
        return cls(_packet_id(body, 0))

    return decode_ack


def _decode_subscribe(flags: int, body: bytes) -> Subscribe:
    packet_id = _packet_id(body, 0)
    pos = 2
    topics: list[tuple[str, int]] = []
    while pos < len(body):
        topic_filter, pos = _string(body, pos)
        validate_topic_filter(topic_filter)
        if pos >= len(body):
            raise _malformed("SUBSCRIBE filter without requested QoS", "MQTT-3.8.3-1")
        qos = body[pos]
        pos += 1
        if qos > 2:
            raise _malformed("SUBSCRIBE requested QoS byte invalid", "MQTT-3.8.3-4")
        topics.append((topic_filter, qos))
    if not topics:
        raise _malformed("SUBSCRIBE without topic filters", "MQTT-3.8.3-3")
    return Subscribe(packet_id, topics)


def _decode_suback(flags: int, body: bytes) -> Suback:
    packet_id = _packet_id(body, 0)
    codes = list(body[2:])
    if not codes or any(code not in (0, 1, 2, c.SUBACK_FAILURE) for code in codes):
        raise _malformed("invalid SUBACK return codes", "MQTT-3.9.3-2")
    return Suback(packet_id, codes)


def _decode_unsubscribe(flags: int, body: bytes) -> Unsubscribe:
    packet_id = _packet_id(body, 0)
    pos = 2
    topics: list[str] = []
    while pos < len(body):
        topic_filter, pos = _string(body, pos)
        validate_topic_filter(topic_filter)
        topics.append(topic_filter)
    if not topics:
        raise _malformed("UNSUBSCRIBE without topic filters", "MQTT-3.10.3-2")
    return Unsubscribe(packet_id, topics)


def _empty(cls: type[Pingreq | Pingresp | Disconnect]) -> Callable[[int, bytes], Packet]:
    def decode_empty(flags: int, body: bytes) -> Packet:
        if body:
            raise _malformed(f"{c.PACKET_NAMES[cls.type]} with a payload", "MQTT-3.12.1")
        return cls()

    return decode_empty


_DECODERS: dict[int, Callable[[int, bytes], Packet]] = {
    c.CONNECT: _decode_connect,
    c.CONNACK: _decode_connack,
    c.PUBLISH: _decode_publish,
    c.PUBACK: _id_only(Puback),
    c.PUBREC: _id_only(Pubrec),
    c.PUBREL: _id_only(Pubrel),
    c.PUBCOMP: _id_only(Pubcomp),
    c.SUBSCRIBE: _decode_subscribe,
    c.SUBACK: _decode_suback,
    c.UNSUBSCRIBE: _decode_unsubscribe,
    c.UNSUBACK: _id_only(Unsuback),
    c.PINGREQ: _empty(Pingreq),
    c.PINGRESP: _empty(Pingresp),
    c.DISCONNECT: _empty(Disconnect),
}


def check_fixed_header(first_byte: int) -> None:
    """Refuse a fixed-header byte that no body can make valid: a reserved packet type, reserved
    flags, PUBLISH QoS 3 or DUP on QoS 0. Framers call it as soon as a packet's header is in,
    so garbage (``GET / HTTP/1.1`` starts with 0x47, a PUBACK with flags 0111) is refused at
    once instead of after the length it announces has arrived."""
    packet_type = first_byte >> 4
    flags = first_byte & 0x0F
    if packet_type == c.PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise _malformed("PUBLISH with QoS 3", "MQTT-3.3.1-4")
        if flags & 0x08 and qos == 0:
            raise _malformed("DUP set on a QoS 0 PUBLISH", "MQTT-3.3.1-2")
        return
    if packet_type not in _DECODERS:
        raise _malformed(f"reserved packet type {packet_type}", "MQTT-2.2.1")
    if flags != c.REQUIRED_FLAGS[packet_type]:
        raise _malformed(
            f"reserved flags {flags:#06b} on {c.PACKET_NAMES[packet_type]}", "MQTT-2.2.2-2"
        )


def decode(first_byte: int, body: bytes) -> Packet:
    """Decode one packet whose fixed header byte is ``first_byte`` and whose body is ``body``."""
    check_fixed_header(first_byte)
    return _DECODERS[first_byte >> 4](first_byte & 0x0F, body)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_remaining_length(n: int) -> bytes:
    if n < 0 or n > c.MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def _bin(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _frame(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


def encode_publish(
    topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
    packet_id: int = 0,
) -> bytes:
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = _str(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return _frame(first, body)


def encode_connack(session_present: bool, return_code: int) -> bytes:
    return bytes((0x20, 2, 1 if session_present else 0, return_code))


def encode_puback(packet_id: int) -> bytes:
    return bytes((0x40, 2, packet_id >> 8, packet_id & 0xFF))


def encode_pubrec(packet_id: int) -> bytes:
    return bytes((0x50, 2, packet_id >> 8, packet_id & 0xFF))


def encode_pubrel(packet_id: int) -> bytes:
    return bytes((0x62, 2, packet_id >> 8, packet_id & 0xFF))


def encode_pubcomp(packet_id: int) -> bytes:
    return bytes((0x70, 2, packet_id >> 8, packet_id & 0xFF))


def encode_suback(packet_id: int, return_codes: list[int]) -> bytes:
    return _frame(0x90, packet_id.to_bytes(2, "big") + bytes(return_codes))


def encode_unsuback(packet_id: int) -> bytes:
    return bytes((0xB0, 2, packet_id >> 8, packet_id & 0xFF))


def encode_connect(p: Connect) -> bytes:
    flags = 0x02 if p.clean_session else 0
    payload = _str(p.client_id)
    if p.will_topic is not None:
        flags |= 0x04 | (p.will_qos << 3) | (0x20 if p.will_retain else 0)
        payload += _str(p.will_topic) + _bin(p.will_payload)
    if p.username is not None:
        flags |= 0x80
        payload += _str(p.username)
    if p.password is not None:
        flags |= 0x40
        payload += _bin(p.password)
    header = (
        _str(p.protocol_name) + bytes((p.protocol_level, flags)) + p.keepalive.to_bytes(2, "big")
    )
    return _frame(0x10, header + payload)


def encode(packet: Packet) -> bytes:
    """Encode any packet object (used by tests, the bench client and rare paths)."""
    t = packet.type
    if t == c.PUBLISH:
        assert isinstance(packet, Publish)
        return encode_publish(
            packet.topic, packet.payload, packet.qos, packet.retain, packet.dup, packet.packet_id
        )
    if t == c.CONNECT:
        assert isinstance(packet, Connect)
        return encode_connect(packet)
    if t == c.CONNACK:
        assert isinstance(packet, Connack)
        return encode_connack(packet.session_present, packet.return_code)
    if t == c.SUBSCRIBE:
        assert isinstance(packet, Subscribe)
        body = b"".join(_str(f) + bytes((q,)) for f, q in packet.topics)
        return _frame(0x82, packet.packet_id.to_bytes(2, "big") + body)
    if t == c.SUBACK:
        assert isinstance(packet, Suback)
        return encode_suback(packet.packet_id, packet.return_codes)
    if t == c.UNSUBSCRIBE:
        assert isinstance(packet, Unsubscribe)
        body = b"".join(_str(f) for f in packet.topics)
        return _frame(0xA2, packet.packet_id.to_bytes(2, "big") + body)
    if t in (c.PINGREQ, c.PINGRESP, c.DISCONNECT):
        return bytes((t << 4, 0))
    packet_id: int = packet.packet_id  # type: ignore[attr-defined]
    return bytes(((t << 4) | c.REQUIRED_FLAGS[t], 2, packet_id >> 8, packet_id & 0xFF))
