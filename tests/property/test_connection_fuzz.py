"""State-machine fuzz of the sans-I/O core: several connections of one Broker fed valid, mutated
and garbage byte streams, in random chunks, checked after every step for the broker's invariants.

Invariants (each step):
- no exception escapes ``Connection.data_received`` (or the flush of the loop turn);
- every connection is NEW (no complete CONNECT yet), CONNECTED, or CLOSED with a non-empty reason,
  its link closed and nothing written to it after the close;
- ``broker.connections`` holds exactly the connections not closed; ``broker.clients`` only
  CONNECTED ones, under their own client id;
- no session has more than ``max_inflight`` messages in flight;
- everything the broker writes decodes as valid MQTT packets;
- a healthy pair of connections (not touched by the fuzz) still exchanges a message: a malformed
  stream closes only its own connection.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from broker.core.connection import CLOSED, CONNECTED, NEW
from broker.mqtt import codec
from broker.mqtt import framing as pure_framing
from broker.mqtt.packets import (
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Unsubscribe,
)
from tests.sansio import PURE_CONNECTION, TRANSPORT_CONNECTION, Client, SansIO, make_config

MAX_INFLIGHT = 3
MAX_PACKET_SIZE = 256
CLIENT_IDS = ["", "a", "b", "c", "d"]
TOPICS = ["t", "t/1", "t/2", "u/x", "$SYS/x"]
FILTERS = [*TOPICS, "#", "t/#", "+/1", "+", "$SYS/#"]

packet_ids = st.integers(1, 6)
qos = st.integers(0, 2)


@st.composite
def connects(draw: st.DrawFn) -> Connect:
    will = draw(st.booleans())
    return Connect(
        draw(st.sampled_from(CLIENT_IDS)),
        draw(st.booleans()),
        draw(st.integers(0, 120)),
        will_topic=draw(st.sampled_from(TOPICS[:4])) if will else None,
        will_payload=draw(st.binary(max_size=8)) if will else b"",
        will_qos=draw(qos) if will else 0,
        will_retain=draw(st.booleans()) if will else False,
    )


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    level = draw(qos)
    return Publish(
        draw(st.sampled_from(TOPICS)),
        draw(st.binary(max_size=300)),  # sometimes beyond max_packet_size
        level,
        draw(st.booleans()),
        draw(st.booleans()) if level else False,
        draw(packet_ids) if level else 0,
    )


client_packets: st.SearchStrategy[Packet] = st.one_of(
    publishes(),
    st.builds(Subscribe, packet_ids,
              st.lists(st.tuples(st.sampled_from(FILTERS), qos), min_size=1, max_size=3)),
    st.builds(Unsubscribe, packet_ids, st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3)),
    st.builds(Puback, packet_ids),
    st.builds(Pubrec, packet_ids),
    st.builds(Pubrel, packet_ids),
    st.builds(Pubcomp, packet_ids),
    st.just(Pingreq()),
    st.just(Disconnect()),
    connects(),  # a second CONNECT is a protocol violation
)


@st.composite
def mutated(draw: st.DrawFn, packets: st.SearchStrategy[Packet]) -> bytes:
    """A valid packet's bytes with one mutation: a changed byte, a cut, or inserted bytes."""
    data = bytearray(codec.encode(draw(packets)))
    kind = draw(st.sampled_from(["flip", "cut", "insert", "header"]))
    if kind == "flip":
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    elif kind == "cut":
        del data[draw(st.integers(1, len(data))):]
    elif kind == "insert":
        pos = draw(st.integers(0, len(data)))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    else:
        data[0] = draw(st.integers(0, 255))
    return bytes(data)


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given positions (modulo its length), in order."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


class ConnectionFuzz(RuleBasedStateMachine):
    clients = Bundle("clients")

    def __init__(self) -> None:
        super().__init__()
        self.h = SansIO(make_config(max_inflight=MAX_INFLIGHT, max_queued_messages=5,
                                    max_packet_size=MAX_PACKET_SIZE))
        self.all: list[Client] = []
        self.now = 0.0
        self.pings = 0
        # The healthy pair: never fed by the fuzz, client ids outside CLIENT_IDS.
        self.listener = self.h.connect("healthy-listener")
        self.listener.send(Subscribe(1, [("healthy/ping", 0)]))
        self.listener.packets()
        self.talker = self.h.connect("healthy-talker")

    def feed(self, client: Client, data: bytes, cuts: list[int]) -> None:
        self.now += 0.25
        for piece in chunks(data, cuts):
            client.conn.data_received(piece, self.now)
        self.h.run()

    # -- rules ----------------------------------------------------------------------------

    @rule(target=clients, connect=connects(), pure_connection=st.booleans(),
          pure_framer=st.booleans(), cuts=st.lists(st.integers(0, 100), max_size=3))
    def open_and_connect(self, connect: Connect, pure_connection: bool, pure_framer: bool,
                         cuts: list[int]) -> Client:
        # Reference and compiled connections (and framers) side by side in one broker.
        cls = PURE_CONNECTION if pure_connection else TRANSPORT_CONNECTION
        client = self.h.open(self.now, connection_class=cls)
        if pure_framer:
            client.conn.framer = pure_framing.Framer(MAX_PACKET_SIZE)
        self.all.append(client)
        self.feed(client, codec.encode(connect), cuts)
        return client

    @rule(target=clients, data=st.one_of(st.binary(max_size=40), mutated(connects())),
          pure_connection=st.booleans())
    def open_with_garbage(self, data: bytes, pure_connection: bool) -> Client:
        cls = PURE_CONNECTION if pure_connection else TRANSPORT_CONNECTION
        client = self.h.open(self.now, connection_class=cls)
        self.all.append(client)
        self.feed(client, data, [])
        return client

    @rule(client=clients, packets=st.lists(client_packets, min_size=1, max_size=6),
          cuts=st.lists(st.integers(0, 2000), max_size=4))
    def send_valid(self, client: Client, packets: list[Packet], cuts: list[int]) -> None:
        self.feed(client, b"".join(codec.encode(p) for p in packets), cuts)

    @rule(client=clients, data=mutated(client_packets), cuts=st.lists(st.integers(0, 400),
                                                                      max_size=2))
    def send_mutated(self, client: Client, data: bytes, cuts: list[int]) -> None:
        self.feed(client, data, cuts)

    @rule(client=clients, data=st.binary(min_size=1, max_size=40))
    def send_garbage(self, client: Client, data: bytes) -> None:
        self.feed(client, data, [])

    @rule(client=clients, topic_filter=st.sampled_from(FILTERS), level=qos)
    def subscribe(self, client: Client, topic_filter: str, level: int) -> None:
        self.feed(client, codec.encode(Subscribe(1, [(topic_filter, level)])), [])

    @rule(topic=st.sampled_from(TOPICS[:4]), level=qos, count=st.integers(1, 8))
    def healthy_talker_publishes(self, topic: str, level: int, count: int) -> None:
        """Traffic to the fuzzed subscribers from a well-behaved client, to fill their windows."""
        data = b"".join(
            codec.encode_publish(topic, b"m%d" % n, level, False, False, n + 1 if level else 0)
            for n in range(count)
        )
        self.talker.send(data)
        self.talker.packets()  # its acknowledgements
        if level == 2:
            self.talker.send(b"".join(codec.encode(Pubrel(n + 1)) for n in range(count)))
            self.talker.packets()

    @rule(client=clients)
    def acknowledge_everything(self, client: Client) -> None:
        """The client answers its inflight messages correctly (PUBACK / PUBREC / PUBCOMP)."""
        session = client.conn.session
        if session is None or client.conn.state != CONNECTED:
            return
        acks: list[Packet] = []
        for packet_id, entry in list(session.inflight.items()):
            if entry.message.qos == 1:
                acks.append(Puback(packet_id))
            else:
                acks += [Pubrec(packet_id), Pubcomp(packet_id)]
        if acks:
            self.feed(client, b"".join(codec.encode(p) for p in acks), [])

    @rule(client=clients, paused=st.booleans())
    def back_pressure(self, client: Client, paused: bool) -> None:
        if client.conn.state == CLOSED:
            return
        if paused:
            client.conn.pause_writing()
        else:
            client.conn.resume_writing()
        self.h.run()

    @rule(client=clients)
    def lose_connection(self, client: Client) -> None:
        client.lose()

    def teardown(self) -> None:
        for reason in sorted({c.conn.close_reason for c in self.all}):
            event(f"close reason {reason or '(open)'}")

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def states_and_reasons(self) -> None:
        for client in self.all:
            conn = client.conn
            assert conn.state in (NEW, CONNECTED, CLOSED)
            if conn.state == CLOSED:
                assert conn.close_reason, conn
                assert client.link.closed
            else:
                assert not client.link.closed
                assert not conn.close_reason
            assert client.link.writes_after_close == 0

    @invariant()
    def registries_hold_only_open_connections(self) -> None:
        broker = self.h.broker
        everyone = [c.conn for c in self.all] + [self.listener.conn, self.talker.conn]
        assert broker.connections == {conn for conn in everyone if conn.state != CLOSED}
        for client_id, conn in broker.clients.items():
            assert conn.state == CONNECTED and conn.client_id == client_id
            assert conn in broker.connections

    @invariant()
    def inflight_window(self) -> None:
        sessions = {id(c.conn.session): c.conn.session for c in self.all if c.conn.session}
        for client_id in CLIENT_IDS:
            session = self.h.broker.sessions.get(client_id)
            if session is not None:
                sessions[id(session)] = session
        for session in sessions.values():
            assert session is not None
            assert len(session.inflight) <= MAX_INFLIGHT, session
            if len(session.inflight) == MAX_INFLIGHT:
                event("a session's inflight window was full")
            assert len(session.queue) <= session.max_queued

    @invariant()
    def output_is_valid_mqtt(self) -> None:
        for client in self.all:
            client.packets()  # asserts every write decodes

    @invariant()
    def healthy_pair_unaffected(self) -> None:
        self.pings += 1
        payload = str(self.pings).encode()
        self.talker.send(Publish("healthy/ping", payload))
        assert self.talker.conn.state == CONNECTED
        assert self.listener.conn.state == CONNECTED
        assert Publish("healthy/ping", payload) in self.listener.packets()


TestConnectionFuzz: Any = ConnectionFuzz.TestCase
TestConnectionFuzz.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
