"""Hypothesis: the pure and compiled codecs and framers agree, on valid packets and on garbage.

The garbage tests are the parser fuzz test: arbitrary bytes and mutated valid streams must give
the same packets and the same error (message, rule, reason, connack) from both framers.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from tests.impl import Impl

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# MQTT strings: well-formed UTF-8 (no surrogates) without U+0000 (MQTT-1.5.3-1/2).
text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
level = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00/+#"), max_size=6
)
topic_names = st.lists(level, min_size=1, max_size=5).map("/".join).filter(bool)
filter_level = st.one_of(level, st.just("+"))
topic_filters = st.builds(
    lambda levels, multi: "/".join(levels + ["#"] if multi else levels),
    st.lists(filter_level, min_size=1, max_size=5),
    st.booleans(),
).filter(bool)
packet_ids = st.integers(1, 65535)
qos = st.integers(0, 2)
payloads = st.binary(max_size=300)


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    clean = draw(st.booleans())
    client_id = draw(text if clean else text.filter(bool))  # MQTT-3.1.3-8
    will = draw(st.booleans())
    username = draw(st.none() | text)
    return Connect(
        client_id,
        clean,
        draw(st.integers(0, 65535)),
        username,
        None if username is None else draw(st.none() | payloads),  # MQTT-3.1.2-22
        draw(topic_names) if will else None,
        draw(payloads) if will else b"",
        draw(qos) if will else 0,
        draw(st.booleans()) if will else False,
    )


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    level_qos = draw(qos)
    return Publish(
        draw(topic_names),
        draw(payloads),
        level_qos,
        draw(st.booleans()),
        draw(st.booleans()) if level_qos else False,  # MQTT-3.3.1-2
        draw(packet_ids) if level_qos else 0,
    )


packets: st.SearchStrategy[Packet] = st.one_of(
    connects(),
    st.builds(Connack, st.booleans(), st.integers(0, 5)),
    publishes(),
    st.builds(Puback, packet_ids),
    st.builds(Pubrec, packet_ids),
    st.builds(Pubrel, packet_ids),
    st.builds(Pubcomp, packet_ids),
    st.builds(
        Subscribe, packet_ids, st.lists(st.tuples(topic_filters, qos), min_size=1, max_size=4)
    ),
    st.builds(
        Suback, packet_ids, st.lists(st.sampled_from([0, 1, 2, c.SUBACK_FAILURE]), min_size=1)
    ),
    st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4)),
    st.builds(Unsuback, packet_ids),
    st.builds(Pingreq),
    st.builds(Pingresp),
    st.builds(Disconnect),
)


def split_frame(frame: bytes) -> tuple[int, bytes]:
    i = 1
    while frame[i] & 0x80:
        i += 1
    return frame[0], frame[i + 1 :]


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def feed_all(framer: Any, chunks: list[bytes]) -> list[Packet | ProtocolError]:
    out: list[Packet | ProtocolError] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out


def decode_outcome(impl: Impl, first: int, body: bytes) -> Packet | ProtocolError:
    try:
        return impl.codec.decode(first, body)  # type: ignore[no-any-return]
    except ProtocolError as error:
        return error


@FAST
@given(packet=packets)
def test_encode_with_one_decode_with_the_other(pure: Impl, compiled: Impl, packet: Packet) -> None:
    pure_frame = pure.codec.encode(packet)
    compiled_frame = compiled.codec.encode(packet)
    assert pure_frame == compiled_frame
    first, body = split_frame(pure_frame)
    assert compiled.codec.decode(first, body) == packet
    assert pure.codec.decode(first, body) == packet
    assert compiled.framing.Framer().feed(pure_frame) == [packet]
    assert pure.framing.Framer().feed(compiled_frame) == [packet]


@FAST
@given(publish=publishes())
def test_encode_publish_agrees(pure: Impl, compiled: Impl, publish: Publish) -> None:
    args = (publish.topic, publish.payload, publish.qos, publish.retain, publish.dup,
            publish.packet_id)
    assert compiled.codec.encode_publish(*args) == pure.codec.encode_publish(*args)


@FAST
@given(stream=st.lists(packets, max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=12))
def test_random_chunking_gives_the_same_packets(
    pure: Impl, compiled: Impl, stream: list[Packet], cuts: list[int]
) -> None:
    data = b"".join(pure.codec.encode(p) for p in stream)
    chunks = chunked(data, cuts)
    for impl in (pure, compiled):
        assert impl.framing.Framer().feed(data) == stream
        framer = impl.framing.Framer()
        assert feed_all(framer, chunks) == stream
        assert framer.buffered() == 0


@FAST
@given(stream=st.lists(packets, min_size=1, max_size=4))
def test_one_byte_at_a_time(pure: Impl, compiled: Impl, stream: list[Packet]) -> None:
    data = b"".join(pure.codec.encode(p) for p in stream)
    for impl in (pure, compiled):
        single_bytes = [data[i : i + 1] for i in range(len(data))]
        assert feed_all(impl.framing.Framer(), single_bytes) == stream


@FUZZ
@given(first=st.integers(0, 255), body=st.binary(max_size=64))
def test_decode_agrees_on_arbitrary_bodies(
    pure: Impl, compiled: Impl, first: int, body: bytes
) -> None:
    assert decode_outcome(compiled, first, body) == decode_outcome(pure, first, body)


@FUZZ
@given(
    data=st.binary(max_size=400),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    max_packet_size=st.integers(2, 500),
)
def test_framers_agree_on_arbitrary_bytes(
    pure: Impl, compiled: Impl, data: bytes, cuts: list[int], max_packet_size: int
) -> None:
    chunks = chunked(data, cuts)
    expected = feed_all(pure.framing.Framer(max_packet_size), chunks)
    assert feed_all(compiled.framing.Framer(max_packet_size), chunks) == expected
    # Chunking never changes the outcome.
    assert compiled.framing.Framer(max_packet_size).feed(data) == expected


mutations = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete"]), st.integers(0, 10_000),
              st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, value in edits:
        i = where % (len(out) + 1)
        if kind == "insert":
            out[i:i] = bytes((value,))
        elif i < len(out):
            if kind == "flip":
                out[i] ^= 1 << (value % 8)
            elif kind == "set":
                out[i] = value
            else:
                del out[i]
    return bytes(out)


@FUZZ
@given(
    stream=st.lists(packets, min_size=1, max_size=4),
    edits=mutations,
    cuts=st.lists(st.integers(0, 2000), max_size=5),
)
def test_framers_agree_on_mutated_packets(
    pure: Impl, compiled: Impl, stream: list[Packet], edits: list[tuple[str, int, int]],
    cuts: list[int],
) -> None:
    data = mutate(b"".join(pure.codec.encode(p) for p in stream), edits)
    chunks = chunked(data, cuts)
    expected = feed_all(pure.framing.Framer(), chunks)
    assert feed_all(compiled.framing.Framer(), chunks) == expected
    assert compiled.framing.Framer().feed(data) == expected
    first, body = split_frame(data) if len(data) > 1 and not data[1] & 0x80 else (0, b"")
    assert decode_outcome(compiled, first, body) == decode_outcome(pure, first, body)
