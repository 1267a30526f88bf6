"""Malformed and forbidden packets (MQTT-4.8.0-1): the offending connection is closed, and only
that one; other clients keep being served."""

from __future__ import annotations

import pytest

from broker.mqtt import codec
from broker.mqtt.packets import Publish
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected


def raw_publish(topic: bytes, payload: bytes = b"x", first: int = 0x30,
                packet_id: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + packet_id + payload
    return bytes((first,)) + codec.encode_remaining_length(len(body)) + body


def assert_bystander_served(b: RunningBroker, bystander: RawClient) -> None:
    with connected(b.host, b.port, "pub") as pub:
        pub.publish("ok/1", b"still-here")
        got = bystander.recv()
        assert isinstance(got, Publish) and got.payload == b"still-here", got


CASES = {
    "remaining-length-5-bytes": (b"\x30\xff\xff\xff\xff\x7f", "protocol_error"),
    "garbage": (b"\xff" * 16, "protocol_error"),
    "reserved-type-0": (b"\x00\x00", "protocol_error"),
    "reserved-type-15": (b"\xf0\x00", "protocol_error"),
    "bad-utf8-topic": (raw_publish(b"a/\xff\xfe"), "protocol_error"),
    "surrogate-topic": (raw_publish(b"a/\xed\xa0\x80"), "protocol_error"),
    "nul-in-topic": (raw_publish(b"a/\x00/b"), "protocol_error"),
    "wildcard-plus-topic": (raw_publish(b"a/+/b"), "invalid_topic"),
    "wildcard-hash-topic": (raw_publish(b"a/#"), "invalid_topic"),
    "empty-topic": (raw_publish(b""), "invalid_topic"),
    "qos-3": (raw_publish(b"a", first=0x36, packet_id=b"\x00\x01"), "protocol_error"),
    "dup-on-qos-0": (raw_publish(b"a", first=0x38), "protocol_error"),
    "packet-id-0": (raw_publish(b"a", first=0x32, packet_id=b"\x00\x00"), "protocol_error"),
    "pubrel-flags": (b"\x60\x02\x00\x01", "protocol_error"),
    "puback-length": (b"\x40\x03\x00\x01\x00", "protocol_error"),
    "pingreq-payload": (b"\xc0\x01\x00", "protocol_error"),
    "connack-from-client": (b"\x20\x02\x00\x00", "protocol_error"),
    "suback-from-client": (b"\x90\x03\x00\x01\x00", "protocol_error"),
    "unsuback-from-client": (b"\xb0\x02\x00\x01", "protocol_error"),
    "pingresp-from-client": (b"\xd0\x00", "protocol_error"),
}


@pytest.mark.parametrize(("data", "reason"), list(CASES.values()), ids=list(CASES))
def test_malformed_closes_only_that_connection(mqtt_broker: RunningBroker, data: bytes,
                                               reason: str) -> None:
    """MQTT-4.8.0-1 (and the rule of each case, see CASES): the network connection of the client
    that sent it is closed; a client connected at the same time keeps receiving messages."""
    b = mqtt_broker
    with connected(b.host, b.port, "bystander") as bystander, \
            connected(b.host, b.port, "bad") as bad:
        bystander.subscribe("ok/#", 0)
        bad.send(data)
        bad.expect_closed()
        assert b.close_reason_count(reason) == 1
        assert_bystander_served(b, bystander)


def test_malformed_split_across_writes(mqtt_broker: RunningBroker) -> None:
    """MQTT-2.2.3: the remaining-length check holds when the header arrives byte by byte."""
    b = mqtt_broker
    with connected(b.host, b.port, "bad") as bad:
        for byte in b"\x30\xff\xff\xff\xff":
            bad.send(bytes((byte,)))
        bad.expect_closed()


def test_oversize_packet(broker_factory: BrokerFactory) -> None:
    """max_packet_size: a packet announcing more than the limit closes with message_too_large,
    before its body arrives; packets within the limit pass."""
    b = broker_factory(max_packet_size=1024)
    with connected(b.host, b.port, "bystander") as bystander, \
            connected(b.host, b.port, "big") as big:
        bystander.subscribe("ok/#", 0)
        big.publish("ok/fits", b"x" * 900)
        got = bystander.recv()
        assert isinstance(got, Publish) and len(got.payload) == 900
        big.send(raw_publish(b"ok/big", b"y" * 2000)[:10])  # only the start of it
        big.expect_closed()
        assert b.close_reason_count("message_too_large") == 1
        assert_bystander_served(b, bystander)
