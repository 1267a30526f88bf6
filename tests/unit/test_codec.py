"""broker.mqtt.codec and its Cython twin: round trips, encoders and every validation rule."""

from __future__ import annotations

import pytest

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
from tests.impl import PURE, Impl


def s(text: str | bytes) -> bytes:
    """An MQTT length-prefixed string (bytes are taken raw, to build ill-formed ones)."""
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def split_frame(frame: bytes) -> tuple[int, bytes]:
    """(fixed header byte, body) of one encoded packet."""
    i = 1
    while frame[i] & 0x80:
        i += 1
    return frame[0], frame[i + 1 :]


def connect_body(
    name: str | bytes = "MQTT", level: int = 4, flags: int = 0x02, payload: bytes | None = None
) -> bytes:
    if payload is None:
        payload = s("client")
    return s(name) + bytes((level, flags)) + (60).to_bytes(2, "big") + payload


ROUND_TRIP: list[Packet] = [
    Connect("c1"),
    Connect("", clean_session=True, keepalive=65535),
    Connect("dev-1", clean_session=False, keepalive=30, username="u", password=b"\x00pw"),
    Connect("dev-2", will_topic="dev/2/lwt", will_payload=b"gone", will_qos=2, will_retain=True),
    Connect("dev-3", username="", password=b"", will_topic="w", will_payload=b"", will_qos=1),
    Connect("ünï-cøde", username="ユーザー"),
    Connack(False, 0),
    Connack(True, 0),
    Connack(False, 5),
    Publish("a/b", b"hi"),
    Publish("a", b""),
    Publish("/", b"\x00" * 300),
    Publish("$SYS/uptime", b"1", 0, True),
    Publish("dev/1/data", b"x" * 64, 1, False, False, 1),
    Publish("dev/1/data", b"y", 1, True, True, 65535),
    Publish("dev/1/data", b"z", 2, False, True, 42),
    Publish("température/ü", b"\xff\xfe", 2, True, False, 7),
    Puback(1),
    Pubrec(2),
    Pubrel(3),
    Pubcomp(65535),
    Subscribe(1, [("a/b", 0)]),
    Subscribe(2, [("a/+", 1), ("#", 2), ("+/x/#", 0), ("$SYS/#", 1)]),
    Suback(1, [0]),
    Suback(2, [0, 1, 2, c.SUBACK_FAILURE]),
    Unsubscribe(1, ["a/b"]),
    Unsubscribe(9, ["a/+", "#"]),
    Unsuback(12),
    Pingreq(),
    Pingresp(),
    Disconnect(),
]


@pytest.mark.parametrize("packet", ROUND_TRIP, ids=repr)
def test_round_trip(impl: Impl, packet: Packet) -> None:
    frame = impl.codec.encode(packet)
    assert frame == PURE.codec.encode(packet)  # the twin writes the very same bytes
    first, body = split_frame(frame)
    decoded = impl.codec.decode(first, body)
    assert type(decoded) is type(packet)
    assert decoded == packet


def test_decode_accepts_bytearray(impl: Impl) -> None:
    first, body = split_frame(PURE.codec.encode(Publish("a/b", b"payload", 1, packet_id=9)))
    expected = Publish("a/b", b"payload", 1, packet_id=9)
    assert impl.codec.decode(first, bytearray(body)) == expected
    payload = impl.codec.decode(first, bytearray(body)).payload
    assert type(payload) is bytes


def test_packet_equality_covers_inherited_fields() -> None:
    # Subclasses declare __slots__ = () and inherit packet_id; it must still be compared.
    assert Puback(1) != Puback(2)
    assert Puback(1) != Pubrec(1)
    assert repr(Pubrel(7)) == "Pubrel(packet_id=7)"


# ---------------------------------------------------------------------------------------------
# Encoders


def test_encode_publish_layout(impl: Impl) -> None:
    assert impl.codec.encode_publish("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert impl.codec.encode_publish("a", b"", 1, True, False, 258) == b"\x33\x05\x00\x01a\x01\x02"
    assert impl.codec.encode_publish("a", b"", 2, dup=True, packet_id=1) == (
        b"\x3c\x05\x00\x01a\x00\x01"
    )
    # QoS 0 carries no packet identifier, whatever is passed.
    assert impl.codec.encode_publish("a", b"p", 0, packet_id=5) == b"\x30\x04\x00\x01ap"


@pytest.mark.parametrize("size", [0, 1, 120, 121, 122, 16375, 16376, 16377, 100_000])
def test_encode_publish_sizes(impl: Impl, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = impl.codec.encode_publish("t/x", payload, 1, packet_id=3)
    assert frame == PURE.codec.encode_publish("t/x", payload, 1, packet_id=3)
    first, body = split_frame(frame)
    assert impl.codec.decode(first, body) == Publish("t/x", payload, 1, packet_id=3)


@pytest.mark.parametrize("payload", [bytearray(b"abc"), memoryview(b"abc")])
def test_encode_publish_accepts_buffers(impl: Impl, payload: bytes) -> None:
    assert impl.codec.encode_publish("a", payload) == b"\x30\x06\x00\x01aabc"


def test_encode_publish_limits(impl: Impl) -> None:
    with pytest.raises(OverflowError):
        impl.codec.encode_publish("x" * 65536, b"")
    with pytest.raises(OverflowError):
        impl.codec.encode_publish("a", b"", 1, packet_id=65536)
    with pytest.raises(TypeError):
        impl.codec.encode_publish("a", "not bytes")
    with pytest.raises(UnicodeEncodeError):
        impl.codec.encode_publish("\ud800", b"")
    assert len(impl.codec.encode_publish("x" * 65535, b"")) == 1 + 3 + 2 + 65535


def test_encode_acks(impl: Impl) -> None:
    codec = impl.codec
    assert codec.encode_connack(False, 0) == b"\x20\x02\x00\x00"
    assert codec.encode_connack(True, 5) == b"\x20\x02\x01\x05"
    assert codec.encode_puback(1) == b"\x40\x02\x00\x01"
    assert codec.encode_pubrec(258) == b"\x50\x02\x01\x02"
    assert codec.encode_pubrel(65535) == b"\x62\x02\xff\xff"
    assert codec.encode_pubcomp(7) == b"\x70\x02\x00\x07"
    assert codec.encode_unsuback(9) == b"\xb0\x02\x00\x09"
    assert codec.encode_suback(1, [0, 1, 2, 0x80]) == b"\x90\x06\x00\x01\x00\x01\x02\x80"
    with pytest.raises(ValueError):
        codec.encode_puback(65536)
    with pytest.raises(ValueError):
        codec.encode_connack(False, 256)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_encode_remaining_length(impl: Impl, n: int, encoded: bytes) -> None:
    assert impl.codec.encode_remaining_length(n) == encoded


@pytest.mark.parametrize("n", [-1, 268_435_456])
def test_encode_remaining_length_range(impl: Impl, n: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        impl.codec.encode_remaining_length(n)


# ---------------------------------------------------------------------------------------------
# Validation: each case names the rule it breaks; the twin must raise an equal error.

MQTT311 = bytes((4,))
INVALID: list[tuple[str, int, bytes, str]] = [
    # (id, first byte, body, rule)
    ("reserved-type-0", 0x00, b"", "MQTT-2.2.1"),
    ("reserved-type-15", 0xF0, b"", "MQTT-2.2.1"),
    ("flags-connect", 0x11, connect_body(), "MQTT-2.2.2-2"),
    ("flags-puback", 0x41, b"\x00\x01", "MQTT-2.2.2-2"),
    ("flags-pubrel-0000", 0x60, b"\x00\x01", "MQTT-2.2.2-2"),
    ("flags-subscribe-0000", 0x80, b"\x00\x01" + s("a") + b"\x00", "MQTT-2.2.2-2"),
    ("flags-unsubscribe-0011", 0xA3, b"\x00\x01" + s("a"), "MQTT-2.2.2-2"),
    ("flags-pingreq", 0xC8, b"", "MQTT-2.2.2-2"),
    ("flags-disconnect", 0xE1, b"", "MQTT-2.2.2-2"),
    ("publish-qos3", 0x36, s("a") + b"\x00\x01", "MQTT-3.3.1-4"),
    ("publish-dup-qos0", 0x38, s("a"), "MQTT-3.3.1-2"),
    ("publish-id-0", 0x32, s("a") + b"\x00\x00", "MQTT-2.3.1-1"),
    ("publish-qos2-id-0", 0x34, s("a") + b"\x00\x00x", "MQTT-2.3.1-1"),
    ("publish-id-truncated", 0x32, s("a") + b"\x00", "MQTT-2.3.1"),
    ("puback-id-0", 0x40, b"\x00\x00", "MQTT-2.3.1-1"),
    ("pubrel-id-0", 0x62, b"\x00\x00", "MQTT-2.3.1-1"),
    ("unsuback-id-0", 0xB0, b"\x00\x00", "MQTT-2.3.1-1"),
    ("subscribe-id-0", 0x82, b"\x00\x00" + s("a") + b"\x00", "MQTT-2.3.1-1"),
    ("unsubscribe-id-0", 0xA2, b"\x00\x00" + s("a"), "MQTT-2.3.1-1"),
    ("suback-id-0", 0x90, b"\x00\x00\x00", "MQTT-2.3.1-1"),
    ("puback-short", 0x40, b"\x01", "MQTT-2.3.1"),
    ("puback-trailing", 0x40, b"\x00\x01\x00", "MQTT-2.3.1"),
    ("pubcomp-empty", 0x70, b"", "MQTT-2.3.1"),
    ("topic-bad-utf8", 0x30, s(b"a\xff"), "MQTT-1.5.3-1"),
    ("topic-overlong-nul", 0x30, s(b"a\xc0\x80"), "MQTT-1.5.3-1"),
    ("topic-surrogate", 0x30, s(b"\xed\xa0\x80"), "MQTT-1.5.3-1"),
    ("topic-truncated-utf8", 0x30, s(b"\xe2\x82"), "MQTT-1.5.3-1"),
    ("topic-bad-utf8-and-nul", 0x30, s(b"\x00\xff"), "MQTT-1.5.3-1"),
    ("topic-nul", 0x30, s(b"a\x00b"), "MQTT-1.5.3-2"),
    ("topic-nul-and-wildcard", 0x30, s(b"+\x00"), "MQTT-1.5.3-2"),
    ("topic-empty", 0x30, s(""), "MQTT-4.7.3-1"),
    ("topic-plus", 0x30, s("a/+/b"), "MQTT-3.3.2-2"),
    ("topic-hash", 0x30, s("#"), "MQTT-3.3.2-2"),
    ("topic-wildcard-utf8", 0x30, s("é/+"), "MQTT-3.3.2-2"),
    ("topic-length-truncated", 0x30, b"\x00", "MQTT-1.5.3"),
    ("publish-empty-body", 0x30, b"", "MQTT-1.5.3"),
    ("topic-past-packet", 0x30, b"\x00\x05abc", "MQTT-1.5.3"),
    ("connect-name", 0x10, connect_body(name="MQTX"), "MQTT-3.1.2-1"),
    ("connect-name-empty", 0x10, connect_body(name=""), "MQTT-3.1.2-1"),
    ("connect-name-truncated", 0x10, b"\x00\x04MQ", "MQTT-1.5.3"),
    ("connect-header-truncated", 0x10, s("MQTT") + b"\x04\x02\x00", "MQTT-3.1.2"),
    ("connect-reserved-flag", 0x10, connect_body(flags=0x03), "MQTT-3.1.2-3"),
    ("connect-will-qos-no-will", 0x10, connect_body(flags=0x0A), "MQTT-3.1.2-13"),
    ("connect-will-retain-no-will", 0x10, connect_body(flags=0x22), "MQTT-3.1.2-15"),
    (
        "connect-will-qos3",
        0x10,
        connect_body(flags=0x1E, payload=s("c") + s("w") + s("m")),
        "MQTT-3.1.2-14",
    ),
    ("connect-password-no-username", 0x10, connect_body(flags=0x42), "MQTT-3.1.2-22"),
    ("connect-client-id-bad-utf8", 0x10, connect_body(payload=s(b"\xff")), "MQTT-1.5.3-1"),
    ("connect-client-id-nul", 0x10, connect_body(payload=s(b"a\x00")), "MQTT-1.5.3-2"),
    ("connect-client-id-missing", 0x10, connect_body(payload=b""), "MQTT-1.5.3"),
    (
        "connect-will-topic-wildcard",
        0x10,
        connect_body(flags=0x06, payload=s("c") + s("w/#") + s("m")),
        "MQTT-3.3.2-2",
    ),
    (
        "connect-will-topic-empty",
        0x10,
        connect_body(flags=0x06, payload=s("c") + s("") + s("m")),
        "MQTT-4.7.3-1",
    ),
    (
        "connect-will-payload-truncated",
        0x10,
        connect_body(flags=0x06, payload=s("c") + s("w") + b"\x00\x09ab"),
        "MQTT-1.5.3",
    ),
    (
        "connect-username-nul",
        0x10,
        connect_body(flags=0x82, payload=s("c") + s(b"u\x00")),
        "MQTT-1.5.3-2",
    ),
    (
        "connect-password-missing",
        0x10,
        connect_body(flags=0xC2, payload=s("c") + s("u")),
        "MQTT-1.5.3",
    ),
    ("connect-trailing", 0x10, connect_body(payload=s("c") + b"x"), "MQTT-3.1.3"),
    ("connack-length", 0x20, b"\x00", "MQTT-3.2.2-1"),
    ("connack-flags", 0x20, b"\x02\x00", "MQTT-3.2.2-1"),
    ("subscribe-empty", 0x82, b"\x00\x01", "MQTT-3.8.3-3"),
    ("subscribe-no-id", 0x82, b"\x00", "MQTT-2.3.1"),
    ("subscribe-qos3", 0x82, b"\x00\x01" + s("a") + b"\x03", "MQTT-3.8.3-4"),
    ("subscribe-reserved-bits", 0x82, b"\x00\x01" + s("a") + b"\x81", "MQTT-3.8.3-4"),
    ("subscribe-missing-qos", 0x82, b"\x00\x01" + s("a"), "MQTT-3.8.3-1"),
    ("subscribe-second-missing-qos", 0x82, b"\x00\x01" + s("a") + b"\x00" + s("b"), "MQTT-3.8.3-1"),
    ("subscribe-filter-empty", 0x82, b"\x00\x01" + s("") + b"\x00", "MQTT-4.7.3-1"),
    ("subscribe-hash-not-last", 0x82, b"\x00\x01" + s("a/#/b") + b"\x00", "MQTT-4.7.1-2"),
    ("subscribe-hash-in-level", 0x82, b"\x00\x01" + s("a/b#") + b"\x00", "MQTT-4.7.1-2"),
    ("subscribe-plus-in-level", 0x82, b"\x00\x01" + s("a+/b") + b"\x00", "MQTT-4.7.1-3"),
    ("subscribe-filter-bad-utf8", 0x82, b"\x00\x01" + s(b"\xfe") + b"\x00", "MQTT-1.5.3-1"),
    ("subscribe-filter-nul", 0x82, b"\x00\x01" + s(b"\x00") + b"\x00", "MQTT-1.5.3-2"),
    ("subscribe-filter-truncated", 0x82, b"\x00\x01\x00", "MQTT-1.5.3"),
    ("suback-empty", 0x90, b"\x00\x01", "MQTT-3.9.3-2"),
    ("suback-bad-code", 0x90, b"\x00\x01\x00\x03", "MQTT-3.9.3-2"),
    ("unsubscribe-empty", 0xA2, b"\x00\x01", "MQTT-3.10.3-2"),
    ("unsubscribe-filter-invalid", 0xA2, b"\x00\x01" + s("#/a"), "MQTT-4.7.1-2"),
    ("unsubscribe-filter-empty", 0xA2, b"\x00\x01" + s("a") + s(""), "MQTT-4.7.3-1"),
    ("unsubscribe-trailing-byte", 0xA2, b"\x00\x01" + s("a") + b"\x00", "MQTT-1.5.3"),
    ("pingreq-payload", 0xC0, b"\x00", "MQTT-3.12.1"),
    ("pingresp-payload", 0xD0, b"\x00", "MQTT-3.12.1"),
    ("disconnect-payload", 0xE0, b"\x00", "MQTT-3.12.1"),
]

TOPIC_RULES = {"MQTT-4.7.3-1", "MQTT-3.3.2-2", "MQTT-4.7.1-2", "MQTT-4.7.1-3"}


def decode_error(impl: Impl, first: int, body: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        impl.codec.decode(first, body)
    return info.value


@pytest.mark.parametrize(
    ("first", "body", "rule"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid(impl: Impl, first: int, body: bytes, rule: str) -> None:
    error = decode_error(impl, first, body)
    assert error.rule == rule
    assert error.reason == ("invalid_topic" if rule in TOPIC_RULES else "protocol_error")
    assert error.connack == -1  # only the cases below answer with a CONNACK before closing
    assert error == decode_error(PURE, first, body)  # message, rule, reason and connack


@pytest.mark.parametrize(
    ("body", "rule", "connack"),
    [
        (connect_body(level=3), "MQTT-3.1.2-2", c.CONNACK_UNACCEPTABLE_PROTOCOL),
        (connect_body(level=5), "MQTT-3.1.2-2", c.CONNACK_UNACCEPTABLE_PROTOCOL),
        (connect_body(name="MQIsdp", level=3), "MQTT-3.1.2-2", c.CONNACK_UNACCEPTABLE_PROTOCOL),
        (connect_body(flags=0x00, payload=s("")), "MQTT-3.1.3-8", c.CONNACK_IDENTIFIER_REJECTED),
    ],
    ids=["level-3", "level-5", "MQIsdp", "empty-client-id-without-clean-session"],
)
def test_invalid_connect_with_connack(impl: Impl, body: bytes, rule: str, connack: int) -> None:
    error = decode_error(impl, 0x10, body)
    assert (error.rule, error.connack, error.reason) == (rule, connack, "protocol_error")
    assert error == decode_error(PURE, 0x10, body)


def test_valid_edge_cases(impl: Impl) -> None:
    decode = impl.codec.decode
    # An empty client id is fine with a clean session (the broker assigns one).
    assert decode(0x10, connect_body(payload=s(""))) == Connect("", True, 60)
    assert decode(0x10, connect_body(flags=0xC2, payload=s("c") + s("u") + s(b"\x00\xff"))) == (
        Connect("c", True, 60, "u", b"\x00\xff")
    )
    # '$', spaces and empty levels are ordinary topic characters; U+FFFF is well-formed UTF-8.
    for topic in ("$SYS/x", "a b", "/", "//", "a/\uffff", "\U0001f600"):
        assert decode(0x30, s(topic) + b"p") == Publish(topic, b"p")
    assert decode(0x31, s("a")) == Publish("a", b"", 0, True)
    assert decode(0x82, b"\x00\x01" + s("+") + b"\x02" + s("#") + b"\x01") == (
        Subscribe(1, [("+", 2), ("#", 1)])
    )
    assert decode(0x90, b"\x00\x05\x80") == Suback(5, [0x80])
