"""SUBSCRIBE / UNSUBSCRIBE (sections 3.8-3.11), topic wildcards (4.7) and the ACL file."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mqtt import codec
from broker.mqtt.packets import Puback, Publish, Suback, Subscribe, Unsuback, Unsubscribe
from tests.conftest import BrokerFactory, RunningBroker
from tests.rawclient import RawClient, connected


def subscribe_bytes(packet_id: int, *filters: tuple[bytes, int], first: int = 0x82) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(
        len(f).to_bytes(2, "big") + f + bytes((q,)) for f, q in filters)
    return bytes((first,)) + codec.encode_remaining_length(len(body)) + body


def received_until_sentinel(client: RawClient) -> list[Publish]:
    """Every PUBLISH before the one on topic ``sentinel`` (sent last by the same publisher, so
    per-publisher ordering guarantees that everything routed before it has arrived)."""
    got: list[Publish] = []
    while True:
        packet = client.recv()
        assert isinstance(packet, Publish), packet
        if packet.topic == "sentinel":
            return got
        got.append(packet)


def test_suback_codes_in_order(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.8.4-1/5, 3.9.3-1: one SUBACK with one return code per filter, in request order,
    carrying the SUBSCRIBE's packet identifier (MQTT-3.8.4-2)."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as client:
        client.send(Subscribe(0x1234, [("a", 2), ("b/+", 0), ("c/#", 1), ("d", 2)]))
        client.expect(Suback(0x1234, [2, 0, 1, 2]))


def test_resubscribe_replaces_qos(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.8.4-3: subscribing to an existing filter replaces it (its new QoS applies)."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as sub, connected(b.host, b.port, "p") as pub:
        sub.subscribe("r", 2, packet_id=1)
        sub.subscribe("r", 0, packet_id=2)
        assert b.call(lambda: len(b.broker.tree)) == 1
        pub.publish("r", b"x", 1, packet_id=1)
        pub.expect(Puback(1))
        got = sub.recv()
        assert isinstance(got, Publish) and got.qos == 0


@pytest.mark.parametrize("bad", [b"a/#/b", b"a+", b"a/b#", b"+a/b", b"", b"a/\x00"])
def test_invalid_filter_closes(mqtt_broker: RunningBroker, bad: bytes) -> None:
    """MQTT-4.7.1-2/3, 4.7.3-1, 1.5.3-2: an invalid topic filter closes the connection."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as client:
        client.send(subscribe_bytes(1, (b"ok", 0), (bad, 0)))
        client.expect_closed()


@pytest.mark.parametrize(
    "data",
    [b"\x82\x02\x00\x01", subscribe_bytes(1, (b"a", 3)), subscribe_bytes(1, (b"a", 0), first=0x80),
     subscribe_bytes(0, (b"a", 0)), b"\xa2\x02\x00\x01"],
    ids=["no-filters", "qos-3", "reserved-flags", "packet-id-0", "empty-unsubscribe"],
)
def test_malformed_subscribe_closes(mqtt_broker: RunningBroker, data: bytes) -> None:
    """MQTT-3.8.3-3 (no filters), 3.8.3-4 (QoS 3), 3.8.1-1 (flags), 2.3.1-1 (id 0),
    3.10.3-2 (empty UNSUBSCRIBE): the connection is closed."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as client:
        client.send(data)
        client.expect_closed()
    assert b.close_reason_count("protocol_error") == 1


def test_unsubscribe_stops_delivery(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.10.4-1/2/4: UNSUBSCRIBE removes the subscription and is answered by UNSUBACK
    with the same packet identifier."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as sub, connected(b.host, b.port, "p") as pub:
        sub.subscribe("u/+", 0)
        pub.publish("u/1", b"before")
        got = sub.recv()
        assert isinstance(got, Publish) and got.payload == b"before"
        sub.send(Unsubscribe(77, ["u/+"]))
        sub.expect(Unsuback(77))
        pub.publish("u/1", b"after")
        sub.expect_silence(0.3)
        assert b.call(lambda: len(b.broker.tree)) == 0


def test_unsuback_for_unknown_filter(mqtt_broker: RunningBroker) -> None:
    """MQTT-3.10.4-5: UNSUBACK even when no filter matched."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as client:
        client.send(Unsubscribe(3, ["never/subscribed", "x/#"]))
        client.expect(Unsuback(3))


TOPICS = ["a", "a/b", "a/b/c", "a/c", "b/b", "/a", "a/", "$SYS/x", "$other/a"]


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a", ["a"]),
        ("a/+", ["a/b", "a/c", "a/"]),
        ("a/#", ["a", "a/b", "a/b/c", "a/c", "a/"]),
        ("+/b", ["a/b", "b/b"]),
        ("+", ["a"]),
        ("+/+", ["a/b", "a/c", "b/b", "/a", "a/"]),
        ("/+", ["/a"]),
        ("#", ["a", "a/b", "a/b/c", "a/c", "b/b", "/a", "a/"]),
        ("$other/#", ["$other/a"]),
        ("+/a", ["/a"]),
    ],
)
def test_wildcards(mqtt_broker: RunningBroker, topic_filter: str, expected: list[str]) -> None:
    """MQTT-4.7.1-1/2/3 and 4.7.2-1: '#' matches the parent and all levels below, '+' exactly one
    level (empty levels too); wildcards at the first level skip topics starting with '$'."""
    b = mqtt_broker
    with connected(b.host, b.port, "s") as sub, connected(b.host, b.port, "p") as pub:
        sub.subscribe(topic_filter, 0, packet_id=1)
        sub.subscribe("sentinel", 0, packet_id=2)
        for topic in TOPICS:
            if not topic.startswith("$SYS"):
                pub.publish(topic, topic.encode())
        pub.publish("sentinel")
        got = received_until_sentinel(sub)
        assert sorted(p.topic for p in got) == sorted(expected)


def test_hash_does_not_receive_sys(broker_factory: BrokerFactory) -> None:
    """MQTT-4.7.2-1: '#' and '+/…' do not match $SYS topics; '$SYS/#' does (positive control)."""
    b = broker_factory(sys_interval=0.2)
    with connected(b.host, b.port, "all") as everything, connected(b.host, b.port, "sys") as sys:
        everything.subscribe("#", 0, packet_id=1)
        everything.subscribe("+/broker/#", 0, packet_id=2)
        sys.subscribe("$SYS/#", 0)
        got = sys.recv(2.0)
        assert isinstance(got, Publish) and got.topic.startswith("$SYS/broker/")
        everything.expect_silence(0.6)  # at least two $SYS rounds pass meanwhile


ACL = """\
# allow|deny publish|subscribe|all who topic-filter
allow all       *    dev/%c/#
allow subscribe *    public/#
allow publish   client:boss public/#
"""


def test_acl_file(broker_factory: BrokerFactory, tmp_path: Path) -> None:
    """ACL file: a denied subscription gets SUBACK 0x80 (MQTT-3.9.3-2) while the others in the
    same SUBSCRIBE are granted; a denied PUBLISH is acknowledged and dropped."""
    acl = tmp_path / "acl"
    acl.write_text(ACL, encoding="utf-8")
    b = broker_factory(acl_file=str(acl))
    with connected(b.host, b.port, "c1") as c1, connected(b.host, b.port, "c2") as c2, \
            connected(b.host, b.port, "boss") as boss:
        c1.send(Subscribe(1, [("dev/c1/x", 1), ("dev/c2/x", 1), ("public/+", 0), ("#", 0),
                              ("dev/c1/#", 2)]))
        c1.expect(Suback(1, [1, 0x80, 0, 0x80, 2]))
        assert c2.subscribe("dev/c2/#", 1) == [1]
        # c1 may not publish into c2's space, nor to public/: PUBACK, but no delivery.
        c1.publish("dev/c2/x", b"intrude", 1, packet_id=4)
        c1.expect(Puback(4))
        c1.publish("public/news", b"spoof", 1, packet_id=5)
        c1.expect(Puback(5))
        c2.expect_silence(0.2)
        c1.expect_silence(0.1)
        # Allowed publishes still flow.
        boss.publish("public/news", b"real", 1, packet_id=6)
        boss.expect(Puback(6))
        got = c1.recv()
        assert isinstance(got, Publish) and got.payload == b"real"
        c2.publish("dev/c2/x", b"own", 0)
        got = c2.recv()
        assert isinstance(got, Publish) and got.payload == b"own"
