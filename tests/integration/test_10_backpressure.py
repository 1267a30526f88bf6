"""Back-pressure: a subscriber that stops reading is paused at mqtt.write_high_water; QoS 0 to
it is dropped and counted, and nobody else waits for it (the broker never blocks on a client)."""

from __future__ import annotations

import time

from broker.mqtt.packets import Pingreq, Pingresp, Puback, Publish
from tests.conftest import BrokerFactory
from tests.rawclient import connected

CHUNK = 50  # QoS 0 messages per round
PAYLOAD = b"z" * 16384


def test_slow_subscriber_does_not_stall_others(broker_factory: BrokerFactory) -> None:
    """The publisher keeps getting PUBACKs and a healthy subscriber keeps getting messages while
    a stalled subscriber's QoS 0 messages are dropped (stats.messages_dropped grows)."""
    b = broker_factory(write_high_water=4096)
    with connected(b.host, b.port, "stalled", rcvbuf=4096) as stalled, \
            connected(b.host, b.port, "healthy") as healthy, \
            connected(b.host, b.port, "pub") as pub:
        stalled.subscribe("flood/#", 0)  # and never reads again
        healthy.subscribe("ok/#", 1)
        deadline = time.monotonic() + 20
        packet_id = 0
        while not b.call(lambda: b.broker.stats.messages_dropped):
            assert time.monotonic() < deadline, "the stalled subscriber was never paused"
            for _ in range(CHUNK):
                pub.publish("flood/x", PAYLOAD)
            # Service continues for everybody else after every round.
            packet_id = packet_id % 65535 + 1
            pub.publish("ok/1", b"%d" % packet_id, 1, packet_id=packet_id)
            pub.expect(Puback(packet_id))
            got = healthy.recv()
            assert isinstance(got, Publish) and got.payload == b"%d" % packet_id, got
            healthy.send(Puback(got.packet_id))
        assert b.call(lambda: b.broker.clients["stalled"].paused)
        dropped = b.call(lambda: b.broker.stats.messages_dropped)
        for _ in range(CHUNK):
            pub.publish("flood/x", PAYLOAD)
        pub.publish("ok/2", b"after", 1, packet_id=1)
        pub.expect(Puback(1))
        got = healthy.recv()
        assert isinstance(got, Publish) and got.payload == b"after"
        assert b.call(lambda: b.broker.stats.messages_dropped) >= dropped + CHUNK
        # A newcomer is served promptly too.
        with connected(b.host, b.port, "new") as new:
            new.send(Pingreq())
            new.expect(Pingresp(), timeout=1.0)
