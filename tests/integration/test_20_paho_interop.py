"""Interoperability with a real client library: paho-mqtt 2.x (callback API version 2)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import RunningBroker

TIMEOUT = 5.0


class Paho:
    """A paho client on its own network thread, with its callbacks turned into queues."""

    def __init__(self, b: RunningBroker, client_id: str, clean_session: bool = True) -> None:
        self.b = b
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session, reconnect_on_failure=False)
        self.connacks: queue.Queue[tuple[bool, int]] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.started = False

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self.connacks.put((bool(flags.session_present), int(reason.value)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        self.subacks.put([int(r.value) for r in reasons])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def start(self, session_present: bool = False) -> Paho:
        self.client.connect(self.b.host, self.b.port, keepalive=30)
        self.client.loop_start()
        self.started = True
        assert self.connacks.get(timeout=TIMEOUT) == (session_present, 0)
        return self

    def subscribe(self, topic: str, qos: int) -> None:
        result, _ = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self.subacks.get(timeout=TIMEOUT) == [qos]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def stop(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()
            self.started = False


MakeClient = Callable[..., Paho]


@pytest.fixture
def clients(mqtt_broker: RunningBroker) -> Iterator[MakeClient]:
    """``clients(client_id, clean_session=True)`` makes Paho clients, stopped after the test."""
    made: list[Paho] = []

    def make(client_id: str, clean_session: bool = True) -> Paho:
        client = Paho(mqtt_broker, client_id, clean_session)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip(clients: MakeClient, qos: int) -> None:
    """QoS 0/1/2 from paho to paho through the broker (paho checks the QoS flows' packets)."""
    sub = clients("sub").start()
    pub = clients("pub").start()
    sub.subscribe("paho/t", qos)
    pub.publish("paho/t", b"hello %d" % qos, qos)
    got = sub.message()
    assert (got.topic, got.payload, got.qos, got.retain) == ("paho/t", b"hello %d" % qos, qos, 0)


def test_retained(clients: MakeClient) -> None:
    """MQTT-3.3.1-6: paho sees the retain flag on a retained message for a new subscription."""
    pub = clients("pub").start()
    pub.publish("paho/retained", b"kept", 1, retain=True)
    sub = clients("sub").start()
    sub.subscribe("paho/#", 1)
    got = sub.message()
    assert (got.topic, got.payload, got.retain, got.qos) == ("paho/retained", b"kept", 1, 1)


def test_will_on_abrupt_disconnect(clients: MakeClient, mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-8: paho's will is published when its socket goes away without DISCONNECT."""
    sub = clients("sub").start()
    sub.subscribe("paho/will", 1)
    dying = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dying")
    dying.will_set("paho/will", b"dead", qos=1)
    connacks: queue.Queue[bool] = queue.Queue()
    dying.on_connect = lambda *args: connacks.put(True)
    dying.connect(mqtt_broker.host, mqtt_broker.port, keepalive=30)
    deadline = time.monotonic() + TIMEOUT
    while connacks.empty():
        assert time.monotonic() < deadline, "no CONNACK"
        dying.loop(timeout=0.05)
    sock = dying.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT: the network connection just ends
    got = sub.message()
    assert (got.topic, got.payload, got.qos) == ("paho/will", b"dead", 1)


def test_persistent_session(clients: MakeClient, mqtt_broker: RunningBroker) -> None:
    """MQTT-3.1.2-4 / 3.2.2-2: paho's CleanSession=0 session keeps its subscription, messages
    published while it is offline arrive after it reconnects with session present 1."""
    sub = clients("keeper", clean_session=False).start()
    sub.subscribe("paho/p", 2)
    sub.stop()
    mqtt_broker.offline("keeper")
    pub = clients("pub").start()
    pub.publish("paho/p", b"while-away-1", 1)
    pub.publish("paho/p", b"while-away-2", 2)
    again = clients("keeper", clean_session=False).start(session_present=True)
    assert [again.message().payload for _ in range(2)] == [b"while-away-1", b"while-away-2"]


def test_many_messages_in_order(clients: MakeClient) -> None:
    """MQTT-4.6.0-6: messages from one publisher on one topic arrive in order (1000 at QoS 1,
    more than the broker's inflight window)."""
    sub = clients("sub").start()
    pub = clients("pub").start()
    sub.subscribe("paho/many", 1)
    infos = [pub.client.publish("paho/many", b"%d" % i, 1) for i in range(1000)]
    for info in infos:
        info.wait_for_publish(TIMEOUT)
    assert [int(sub.message().payload) for _ in range(1000)] == list(range(1000))
