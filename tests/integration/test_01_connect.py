"""CONNECT and CONNACK (sections 3.1, 3.2) against a running broker, byte by byte."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.mqtt import codec
from broker.mqtt.packets import Connack, Connect, Pingreq, Pingresp
from broker.security.passwords import hash_password
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected


def connect_bytes(flags: int = 0x02, client_id: bytes = b"c", name: bytes = b"MQTT",
                  level: int = 4, keepalive: int = 60) -> bytes:
    """A CONNECT built by hand, so that fields the codec would refuse to encode can be set."""
    body = (len(name).to_bytes(2, "big") + name + bytes((level, flags))
            + keepalive.to_bytes(2, "big") + len(client_id).to_bytes(2, "big") + client_id)
    return bytes((0x10,)) + codec.encode_remaining_length(len(body)) + body


def test_connack_accepted(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.2.2-1/3: a valid CONNECT gets CONNACK 0 with session present 0 (clean session)."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(Connect("c1", True, 60))
        client.expect(Connack(False, 0))
        assert b.call(lambda: "c1" in b.broker.clients)
        client.send(Pingreq())
        client.expect(Pingresp())


@pytest.mark.parametrize("level", [3, 5])
def test_unsupported_protocol_level(mqtt_broker: RunningBroker, level: int) -> None:
    """MQTT-3.1.2-2: an unsupported protocol level gets CONNACK 1, then the close."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(level=level))
        client.expect(Connack(False, 1))
        client.expect_closed()


def test_mqtt31_protocol_name(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-2: an MQTT 3.1 client ("MQIsdp", level 3) is refused with CONNACK 1."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(name=b"MQIsdp", level=3))
        client.expect(Connack(False, 1))
        client.expect_closed()


def test_wrong_protocol_name(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-1: any other protocol name closes the connection without a CONNACK."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(name=b"MQTX"))
        client.expect_closed()
    assert b.close_reason_count("protocol_error") == 1


def test_reserved_connect_flag(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-3: the reserved CONNECT flag must be 0, else the connection is closed."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(flags=0x03))
        client.expect_closed()


@pytest.mark.parametrize(
    "first", [b"\xc0\x00", b"\x30\x03\x00\x01ax", b"\x82\x06\x00\x01\x00\x01a\x00"],
    ids=["pingreq", "publish", "subscribe"],
)
def test_first_packet_not_connect(mqtt_broker: RunningBroker, first: bytes) -> None:
    """MQTT-3.1.0-1: the first packet from a client must be CONNECT, else the close."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(first)
        client.expect_closed()
    assert b.close_reason_count("protocol_error") == 1


def test_second_connect(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.0-2: a second CONNECT on one connection is a protocol violation."""
    b = mqtt_broker
    with connected(b.host, b.port, "twice") as client:
        client.send(Connect("twice", True, 60))
        client.expect_closed()
    assert b.close_reason_count("protocol_error") == 1


def test_zero_length_client_id_clean(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.3-6/7: a zero-length client id with clean session gets a server-assigned id."""
    b = mqtt_broker
    with connected(b.host, b.port, "") as one, connected(b.host, b.port, "") as two:
        ids = b.call(lambda: sorted(b.broker.clients))
        assert len(ids) == 2 and all(ids), ids  # two distinct, non-empty ids
        one.send(Pingreq())
        one.expect(Pingresp())
        two.send(Pingreq())
        two.expect(Pingresp())


def test_zero_length_client_id_persistent(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.3-8: a zero-length client id without clean session gets CONNACK 2 and the close."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(flags=0x00, client_id=b""))
        client.expect(Connack(False, 2))
        client.expect_closed()


def test_anonymous_refused(broker_factory: BrokerFactory) -> None:
    """MQTT-3.2.2-6 (CONNACK 5): allow_anonymous=False refuses a client without a username."""
    b = broker_factory(allow_anonymous=False)
    with RawClient(b.host, b.port) as client:
        client.send(Connect("anon", True, 60))
        client.expect(Connack(False, 5))
        client.expect_closed()
    assert b.close_reason_count("not_authorized") == 1


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [("alice", b"secret", 0), ("alice", b"wrong", 4), ("mallory", b"secret", 4),
     (None, None, 5)],
    ids=["good", "wrong-password", "unknown-user", "anonymous"],
)
def test_password_file(broker_factory: BrokerFactory, tmp_path: Path, username: str | None,
                       password: bytes | None, code: int) -> None:
    """CONNACK 0 for a good password, 4 (bad user name or password) otherwise, 5 anonymous."""
    passwords = tmp_path / "passwd"
    passwords.write_text(f"alice:{hash_password(b'secret', n=1024)}\n", encoding="utf-8")
    b = broker_factory(allow_anonymous=False, password_file=str(passwords))
    with RawClient(b.host, b.port) as client:
        client.send(Connect("pw", True, 60, username=username, password=password))
        client.expect(Connack(False, code))
        if code:
            client.expect_closed()
        else:
            client.send(Pingreq())
            client.expect(Pingresp())


def test_connect_timeout(broker_factory: BrokerFactory) -> None:
    """A connection that sends no CONNECT within connect_timeout is closed (idle_timeout)."""
    b = broker_factory(connect_timeout=0.5)
    with RawClient(b.host, b.port) as client:
        started = time.monotonic()
        client.expect_closed(timeout=3.0)
        assert time.monotonic() - started >= 0.4
    assert b.close_reason_count("idle_timeout") == 1


def test_max_connections(broker_factory: BrokerFactory) -> None:
    """max_connections: the connection above the limit is closed; a freed slot is usable."""
    b = broker_factory(max_connections=2)
    with connected(b.host, b.port, "m1"), connected(b.host, b.port, "m2") as second:
        with RawClient(b.host, b.port) as third:
            third.expect_closed()
        assert b.close_reason_count("max_connections") == 1
        second.close()
        b.wait(lambda: len(b.broker.connections) == 1)
        with connected(b.host, b.port, "m3") as fourth:
            fourth.send(Pingreq())
            fourth.expect(Pingresp())


@pytest.mark.parametrize(
    "flags",
    [0x02 | 0x18, 0x02 | 0x20, 0x02 | 0x40],
    ids=["will-qos-without-will", "will-retain-without-will", "password-without-username"],
)
def test_inconsistent_connect_flags(mqtt_broker: RunningBroker, flags: int) -> None:
    """MQTT-3.1.2-13/15 (will QoS / retain need the will flag), 3.1.2-22 (password needs a
    username): the connection is closed without a CONNACK."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(connect_bytes(flags=flags))
        client.expect_closed()


def test_will_topic_with_wildcard(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.3-10 / 3.3.2-2: the will topic is a topic name, so a wildcard closes."""
    b = mqtt_broker
    with RawClient(b.host, b.port) as client:
        client.send(Connect("w", True, 60, will_topic="will/+", will_payload=b"x"))
        client.expect_closed()
    assert b.close_reason_count("invalid_topic") == 1
