"""broker.mqtt.framing and its Cython twin: chunking, remaining lengths, limits and failure."""

from __future__ import annotations

from typing import Any

import pytest

from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import (
    Connect,
    Packet,
    Pingreq,
    Puback,
    Publish,
    Pubrel,
    Subscribe,
    Unsuback,
)
from tests.impl import PURE, Impl

PACKETS: list[Packet] = [
    Connect("dev-1", keepalive=30, username="u", password=b"p"),
    Publish("dev/1/data", b"x" * 64),
    Pingreq(),
    Publish("dev/1/cmd", b"", 1, packet_id=1),
    Puback(1),
    Subscribe(2, [("dev/+/data", 1), ("#", 0)]),
    Pubrel(3),
    Publish("a", b"\xff" * 200, 2, True, True, 4),
    Unsuback(5),
]
STREAM = b"".join(PURE.codec.encode(p) for p in PACKETS)
BAD_PUBLISH = b"\x36\x03\x00\x01a"  # QoS 3
TOO_LONG = ProtocolError("remaining length longer than four bytes", "MQTT-2.2.3")


def feed_all(framer: Any, chunks: list[bytes]) -> list[Packet | ProtocolError]:
    out: list[Packet | ProtocolError] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def test_whole_stream_in_one_chunk(impl: Impl) -> None:
    framer = impl.framing.Framer()
    assert framer.feed(STREAM) == PACKETS
    assert framer.buffered() == 0
    assert not framer.failed


def test_split_at_every_byte_boundary(impl: Impl) -> None:
    for i in range(len(STREAM) + 1):
        framer = impl.framing.Framer()
        assert feed_all(framer, [STREAM[:i], STREAM[i:]]) == PACKETS, i
        assert framer.buffered() == 0


def test_split_at_every_pair_of_boundaries(impl: Impl) -> None:
    stream = b"".join(PURE.codec.encode(p) for p in PACKETS[1:5])
    expected = PACKETS[1:5]
    for i in range(len(stream) + 1):
        for j in range(i, len(stream) + 1):
            framer = impl.framing.Framer()
            assert feed_all(framer, [stream[:i], stream[i:j], stream[j:]]) == expected, (i, j)


def test_one_byte_at_a_time(impl: Impl) -> None:
    framer = impl.framing.Framer()
    out: list[Packet | ProtocolError] = []
    for i in range(len(STREAM)):
        out += framer.feed(STREAM[i : i + 1])
        # Only the bytes of the packet not yet complete are held.
        assert framer.buffered() == len(STREAM[: i + 1]) - len(
            b"".join(PURE.codec.encode(p) for p in out)  # type: ignore[arg-type]
        )
    assert out == PACKETS


def test_partial_tail_is_kept(impl: Impl) -> None:
    frame = PURE.codec.encode(PACKETS[1])
    framer = impl.framing.Framer()
    assert framer.feed(frame + frame[:5]) == [PACKETS[1]]
    assert framer.buffered() == 5
    assert framer.feed(frame[5:] + frame[:1]) == [PACKETS[1]]
    assert framer.buffered() == 1
    assert framer.feed(b"") == []
    assert framer.feed(frame[1:]) == [PACKETS[1]]


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_accepts_buffers(impl: Impl, kind: type) -> None:
    framer = impl.framing.Framer()
    assert framer.feed(kind(STREAM[:10])) + framer.feed(kind(STREAM[10:])) == PACKETS


@pytest.mark.parametrize(
    ("payload_size", "length_bytes"),
    # remaining length = 2 + 1 (topic "t") + payload: 127 | 128 | 16383 | 16384 | 2097152
    [(0, 1), (124, 1), (125, 2), (16380, 2), (16381, 3), (2_097_148, 3), (2_097_149, 4)],
)
def test_remaining_length_sizes(impl: Impl, payload_size: int, length_bytes: int) -> None:
    packet = Publish("t", b"\xab" * payload_size)
    frame = PURE.codec.encode(packet)
    assert len(frame) == 1 + length_bytes + 3 + payload_size
    framer = impl.framing.Framer(max_packet_size=4 * 1024 * 1024)
    assert framer.feed(frame) == [packet]
    # Split inside the length bytes, right after them, and mid-body.
    for cut in (1, 2, length_bytes, length_bytes + 1, length_bytes + 2, len(frame) // 2):
        framer = impl.framing.Framer(max_packet_size=4 * 1024 * 1024)
        assert framer.feed(frame[:cut]) == []
        assert framer.feed(frame[cut:] + frame) == [packet, packet]


def test_five_length_bytes_are_malformed(impl: Impl) -> None:
    framer = impl.framing.Framer()
    assert framer.feed(b"\x30\xff\xff\xff\xff\x7f") == [TOO_LONG]
    assert framer.failed


def test_five_length_bytes_fail_as_soon_as_seen(impl: Impl) -> None:
    framer = impl.framing.Framer()
    assert framer.feed(b"\x30\xff\xff\xff") == []  # three continuation bytes are still fine
    assert framer.feed(b"\xff") == [TOO_LONG]


def test_five_length_bytes_one_byte_at_a_time(impl: Impl) -> None:
    data = PURE.codec.encode(Pingreq()) + b"\x30\xff\xff\xff\xff"
    framer = impl.framing.Framer()
    assert feed_all(framer, [bytes((b,)) for b in data]) == [Pingreq(), TOO_LONG]


def test_max_packet_size(impl: Impl) -> None:
    fits = PURE.codec.encode(Publish("a", b"x" * 5))  # 10 bytes: header 2, topic 3, payload 5
    assert len(fits) == 10
    framer = impl.framing.Framer(max_packet_size=10)
    assert framer.feed(fits) == [Publish("a", b"x" * 5)]
    over = PURE.codec.encode(Publish("a", b"x" * 6))
    out = framer.feed(fits + over)
    assert out[0] == Publish("a", b"x" * 5)
    error = out[1]
    assert isinstance(error, ProtocolError)
    assert error.reason == "message_too_large"
    assert error.rule == ""
    assert error.message == "packet of 11 bytes exceeds the limit of 10"
    assert framer.failed


def test_max_packet_size_is_checked_on_the_header_alone(impl: Impl) -> None:
    framer = impl.framing.Framer(max_packet_size=1000)
    # A 2 MB PUBLISH announced by its header fails before any of its body is buffered.
    out = framer.feed(b"\x30\x80\x80\x80\x01")
    assert len(out) == 1
    assert out[0] == ProtocolError(
        "packet of 2097157 bytes exceeds the limit of 1000", "", "message_too_large"
    )
    assert framer.buffered() == 0


def test_max_packet_size_when_the_header_completes_in_a_later_chunk(impl: Impl) -> None:
    framer = impl.framing.Framer(max_packet_size=100)
    assert framer.feed(b"\x30\x80") == []
    assert framer.feed(b"\x01") == [
        ProtocolError("packet of 131 bytes exceeds the limit of 100", "", "message_too_large")
    ]


def test_packets_before_an_error_then_the_error(impl: Impl) -> None:
    good = PURE.codec.encode(Publish("a/b", b"1"))
    framer = impl.framing.Framer()
    out = framer.feed(good + good + BAD_PUBLISH + good)
    assert out[:2] == [Publish("a/b", b"1")] * 2
    assert len(out) == 3
    assert isinstance(out[2], ProtocolError)
    assert out[2].rule == "MQTT-3.3.1-4"
    assert framer.failed


def test_decode_error_in_a_packet_split_across_chunks(impl: Impl) -> None:
    """A body error (MQTT-3.3.2-2, wildcard in the topic) shows once the body is complete."""
    good = PURE.codec.encode(Publish("a/b", b"1"))
    bad = b"\x30\x04\x00\x02a+"
    framer = impl.framing.Framer()
    assert framer.feed(good + bad[:3]) == [Publish("a/b", b"1")]
    out = framer.feed(bad[3:] + good)
    assert len(out) == 1
    assert isinstance(out[0], ProtocolError)
    assert out[0].rule == "MQTT-3.3.2-2"


def test_bad_fixed_header_refused_before_its_body(impl: Impl) -> None:
    """MQTT-3.3.1-4 / MQTT-2.2.2-2: a header no body can make valid fails as soon as it is in."""
    good = PURE.codec.encode(Publish("a/b", b"1"))
    framer = impl.framing.Framer()
    out = framer.feed(good + BAD_PUBLISH[:3])
    assert out[0] == Publish("a/b", b"1")
    assert len(out) == 2 and out[1].rule == "MQTT-3.3.1-4"
    # An HTTP request line: 0x47 is a PUBACK with reserved flags 0111, announcing 32 bytes.
    framer = impl.framing.Framer()
    out = framer.feed(b"GET / HTTP/1.1\r\n")
    assert len(out) == 1 and out[0].rule == "MQTT-2.2.2-2"


def test_bad_fixed_header_refused_when_its_header_completes_in_a_later_chunk(impl: Impl) -> None:
    framer = impl.framing.Framer()
    assert framer.feed(b"\x36") == []
    out = framer.feed(b"\x10")
    assert len(out) == 1 and out[0].rule == "MQTT-3.3.1-4"


def test_input_after_failure_is_ignored(impl: Impl) -> None:
    framer = impl.framing.Framer()
    framer.feed(BAD_PUBLISH + STREAM[:7])
    assert framer.failed
    assert framer.buffered() == 0
    assert framer.feed(STREAM) == []
    assert framer.feed(b"\x00") == []
    assert framer.buffered() == 0


def test_reserved_packet_type_refused_without_waiting_for_its_body(impl: Impl) -> None:
    """MQTT-2.2.1: type 15 is refused once its header is in, the body never awaited."""
    framer = impl.framing.Framer()
    out = framer.feed(b"\xf0\x02\x00")
    assert len(out) == 1
    assert isinstance(out[0], ProtocolError)
    assert out[0].rule == "MQTT-2.2.1"


def test_same_results_as_the_reference(impl: Impl) -> None:
    for data in (STREAM + BAD_PUBLISH, STREAM[:-1], b"\x30\x00", b"\x10\x00", b"\x00\x00"):
        ours = impl.framing.Framer().feed(data)
        assert ours == PURE.framing.Framer().feed(data)


def test_large_packet_trickled_in_small_chunks(impl: Impl) -> None:
    # The held packet grows chunk by chunk; the next packet starts in the completing chunk.
    packet = Publish("big", bytes(range(256)) * 200, 1, packet_id=9)
    data = PURE.codec.encode(packet) * 2
    framer = impl.framing.Framer()
    assert feed_all(framer, [data[i : i + 999] for i in range(0, len(data), 999)]) == [packet] * 2
    assert framer.buffered() == 0
