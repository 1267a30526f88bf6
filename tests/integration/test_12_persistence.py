"""Persistence (spec section 5): retained messages and persistent sessions (subscriptions, queued
and in-flight QoS 1/2 messages, incoming QoS 2 identifiers) live in LMDB and survive a restart;
a QoS 1 PUBLISH is acknowledged only once its effects are committed, so even SIGKILL under load
loses no acknowledged message."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from broker.mqtt.packets import Disconnect, Puback, Pubcomp, Publish, Pubrec, Pubrel
from tests.conftest import make_config, start_broker
from tests.integration.test_serve_cli import free_port, run_serve, wait_for_port
from tests.rawclient import Closed, RawClient, connected


def restartable(tmp_path: Path, sync: str = "always") -> Any:
    """Start a broker on ``tmp_path``'s data directory; call the result to stop it."""
    config = make_config(tmp_path)
    config.storage.sync = sync
    return start_broker(config)


def recv_publish(client: RawClient) -> Publish:
    got = client.recv()
    assert isinstance(got, Publish), got
    return got


@pytest.mark.parametrize("sync", ["always", "batch", "none"])
def test_graceful_restart_keeps_retained_sessions_and_queues(tmp_path: Path, sync: str) -> None:
    """After a stop and start on the same data directory: retained messages, a persistent
    session's subscription and its queued QoS 1/2 messages (in order) are all there, whatever
    ``storage.sync`` is (with the writer thread for always, committed on the loop otherwise)."""
    b, stop = restartable(tmp_path, sync)
    sub = connected(b.host, b.port, "keeper", clean=False)
    sub.subscribe("q/#", 2)
    sub.send(Disconnect())
    sub.close()
    b.offline("keeper")
    with connected(b.host, b.port, "pub") as pub:
        pub.publish("r/kept", b"retained", 1, retain=True, packet_id=1)
        pub.expect(Puback(1))
        pub.publish("r/gone", b"x", 0, retain=True)
        pub.publish("r/gone", b"", 0, retain=True)  # removed again (MQTT-3.3.1-10)
        for i in range(1, 4):
            pub.publish(f"q/{i}", b"m%d" % i, 1 if i != 2 else 2, packet_id=10 + i)
            if i == 2:
                pub.expect(Pubrec(12))
                pub.send(Pubrel(12))
                pub.expect(Pubcomp(12))
            else:
                pub.expect(Puback(10 + i))
    stop()

    b, stop = restartable(tmp_path, sync)
    try:
        assert b.call(lambda: len(b.broker.retained)) == 1
        with connected(b.host, b.port, "reader") as reader:
            reader.subscribe("r/#", 1)
            got = recv_publish(reader)
            assert (got.topic, got.payload, got.retain) == ("r/kept", b"retained", True)
            reader.send(Puback(got.packet_id))
            reader.expect_silence(0.2)
        with connected(b.host, b.port, "keeper", clean=False, session_present=True) as again:
            got = [recv_publish(again) for _ in range(3)]
            assert [(p.topic, p.payload, p.qos, p.dup) for p in got] == [
                ("q/1", b"m1", 1, False), ("q/2", b"m2", 2, False), ("q/3", b"m3", 1, False)]
            again.send(Puback(got[0].packet_id))
            again.send(Pubrec(got[1].packet_id))
            again.expect(Pubrel(got[1].packet_id))
            again.send(Pubcomp(got[1].packet_id))
            again.send(Puback(got[2].packet_id))
            b.wait(lambda: not b.broker.sessions.get("keeper").inflight)
            # The subscription itself survived too.
            with connected(b.host, b.port, "pub") as pub:
                pub.publish("q/live", b"live", 1, packet_id=1)
                pub.expect(Puback(1))
            assert recv_publish(again).topic == "q/live"
    finally:
        stop()
    # Acknowledged messages are gone from the store: only the unacknowledged one comes back.
    b, stop = restartable(tmp_path, sync)
    try:
        assert b.call(lambda: len(b.broker.sessions.get("keeper").inflight)) == 1
        with connected(b.host, b.port, "keeper", clean=False, session_present=True) as again:
            got = recv_publish(again)
            assert got.topic == "q/live" and got.dup  # sent, never acknowledged: DUP=1
            again.send(Puback(got.packet_id))
            again.expect_silence(0.2)
    finally:
        stop()


def test_long_topic_names_and_client_ids_are_stored(tmp_path: Path) -> None:
    """MQTT allows 65,535-byte topic names and client ids; LMDB keys hold 511 bytes. A long
    retained topic and a persistent session with a long client id are stored like short ones,
    and the other clients' messages committed in the same batches are not affected."""
    topic, client_id = "r/" + "t" * 5000, "c" * 2000
    b, stop = restartable(tmp_path)
    try:
        sub = connected(b.host, b.port, client_id, clean=False)
        sub.subscribe("q/#", 1)
        sub.send(Disconnect())
        sub.close()
        b.offline(client_id)
        with connected(b.host, b.port, "long") as long, connected(b.host, b.port, "short") as short:
            long.publish(topic, b"long", 1, retain=True, packet_id=1)
            short.publish("r/short", b"short", 1, retain=True, packet_id=2)
            short.publish("q/1", b"queued", 1, packet_id=3)
            long.expect(Puback(1))
            short.expect(Puback(2))
            short.expect(Puback(3))
    finally:
        stop()
    b, stop = restartable(tmp_path)
    try:
        with connected(b.host, b.port, "reader") as reader:
            reader.subscribe("r/#", 0)
            got = {recv_publish(reader).topic for _ in range(2)}
            assert got == {topic, "r/short"}
        with connected(b.host, b.port, client_id, clean=False, session_present=True) as again:
            assert recv_publish(again).payload == b"queued"
    finally:
        stop()


def test_restart_resends_inflight_with_dup_and_same_ids(tmp_path: Path) -> None:
    """Unacknowledged messages of a persistent session come back after a restart with DUP=1,
    their packet identifiers and order; a QoS 2 message already PUBRECed as a PUBREL
    (MQTT-4.4.0-1, MQTT-4.3.3-1); an incoming QoS 2 identifier is still known (no re-routing)."""
    b, stop = restartable(tmp_path)
    sub = connected(b.host, b.port, "rd", clean=False)
    sub.subscribe("r/#", 2)
    with connected(b.host, b.port, "pub", clean=False) as pub:
        for i, (topic, qos) in enumerate([("r/a", 1), ("r/b", 2), ("r/c", 1)], 1):
            pub.publish(topic, topic.encode(), qos, packet_id=i)
            pub.expect(Puback(i) if qos == 1 else Pubrec(i))
        first = [recv_publish(sub) for _ in range(3)]
        sub.send(Pubrec(first[1].packet_id))
        sub.expect(Pubrel(first[1].packet_id))
        # A QoS 2 PUBLISH from the persistent "pub" session, not yet released.
        pub.publish("r/once", b"once", 2, packet_id=40)
        pub.expect(Pubrec(40))
        assert recv_publish(sub).topic == "r/once"
    sub.close()
    stop()

    b, stop = restartable(tmp_path)
    try:
        with connected(b.host, b.port, "rd", clean=False, session_present=True) as again:
            resent = [again.recv() for _ in range(4)]
            assert isinstance(resent[0], Publish) and resent[0].dup
            assert resent[0].packet_id == first[0].packet_id and resent[0].topic == "r/a"
            assert resent[1] == Pubrel(first[1].packet_id)
            assert isinstance(resent[2], Publish) and resent[2].dup
            assert resent[2].packet_id == first[2].packet_id
            assert isinstance(resent[3], Publish) and resent[3].topic == "r/once"
            with connected(b.host, b.port, "pub", clean=False, session_present=True) as pub:
                pub.publish("r/once", b"once", 2, packet_id=40, dup=True)
                pub.expect(Pubrec(40))  # acknowledged again, not routed again
                pub.send(Pubrel(40))
                pub.expect(Pubcomp(40))
            again.expect_silence(0.2)
    finally:
        stop()


def test_commit_failure_withholds_the_ack(tmp_path: Path) -> None:
    """A commit that fails acknowledges nothing: the publisher's connection is closed
    (``storage_error``) and its PUBACK never sent."""
    b, stop = restartable(tmp_path)
    try:
        store = b.server.store
        real_apply = store.apply

        def failing(ops: Any) -> None:
            raise OSError(28, "No space left on device")

        store.apply = failing
        with connected(b.host, b.port, "pub") as pub:
            pub.publish("r/x", b"x", 1, retain=True, packet_id=1)
            pub.expect_closed()
        assert b.close_reason_count("storage_error") == 1
        store.apply = real_apply
        with connected(b.host, b.port, "pub") as pub:
            pub.publish("r/x", b"x", 1, retain=True, packet_id=1)
            pub.expect(Puback(1))
    finally:
        stop()


# -- SIGKILL under load ---------------------------------------------------------------------------


class Publisher(threading.Thread):
    """Sends QoS 1 retained PUBLISHes on distinct topics, up to ``window`` unacknowledged, and
    records what was acknowledged until the broker goes away or ``count`` is reached."""

    def __init__(self, port: int, name: str, count: int, window: int = 32) -> None:
        super().__init__(name=name, daemon=True)
        self.port, self.count, self.window = port, count, window
        self.acked: dict[str, bytes] = {}
        self.sent: dict[int, tuple[str, bytes]] = {}

    def run(self) -> None:
        try:
            client = connected("127.0.0.1", self.port, self.name)
        except (OSError, Closed):
            return
        client.sock.settimeout(5)
        try:
            next_id = 0
            while next_id < self.count or self.sent:
                while next_id < self.count and len(self.sent) < self.window:
                    next_id += 1
                    topic, payload = f"load/{self.name}/{next_id}", b"%s-%d" % (
                        self.name.encode(), next_id)
                    self.sent[next_id] = (topic, payload)
                    client.publish(topic, payload, 1, retain=True, packet_id=next_id)
                got = client.recv(5)
                assert isinstance(got, Puback), got
                topic, payload = self.sent.pop(got.packet_id)
                self.acked[topic] = payload
        except (OSError, Closed, TimeoutError):
            return  # the broker was killed
        finally:
            client.close()


@pytest.mark.parametrize("sync", ["always", "batch", "none"])
def test_sigkill_under_qos1_load_loses_no_acknowledged_message(tmp_path: Path, sync: str) -> None:
    """SIGKILL while 4 publishers send QoS 1 retained PUBLISHes (a persistent subscriber
    offline): after a restart every acknowledged message is retained and queued. A process
    crash loses nothing in any sync mode: commits are in the page cache before the PUBACK."""
    data = tmp_path / "data"
    config = tmp_path / "fleetgate.toml"
    config.write_text("[mqtt]\nmax_queued_messages = 1000000\nsys_interval = 0.0\n"
                      f"[storage]\nsync = \"{sync}\"\n")
    port = free_port()
    args = ("--config", str(config), "--mqtt", f"127.0.0.1:{port}", "--allow-anonymous",
            "--data", str(data))
    process = run_serve(*args)
    try:
        wait_for_port(port, process)
        with connected("127.0.0.1", port, "durable", clean=False) as sub:
            sub.subscribe("load/#", 1)
            sub.send(Disconnect())
        publishers = [Publisher(port, f"p{i}", count=20_000) for i in range(4)]
        for publisher in publishers:
            publisher.start()
        deadline = time.monotonic() + 10
        while sum(len(p.acked) for p in publishers) < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)  # mid-load: PUBLISHes are still arriving
        process.wait(5)
        for publisher in publishers:
            publisher.join(10)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=5)
    acked: dict[str, bytes] = {}
    for publisher in publishers:
        acked.update(publisher.acked)
    assert len(acked) >= 200, "too few acknowledged messages before the kill to be a test"
    assert any(p.sent for p in publishers), "the broker was not killed mid-load"

    process = run_serve(*args)
    try:
        wait_for_port(port, process)
        # Every acknowledged message is retained ...
        with connected("127.0.0.1", port, "reader") as reader:
            reader.subscribe("load/#", 0)
            retained = collect(reader, set(acked), ack=False)
        missing = [topic for topic, payload in acked.items() if retained.get(topic) != payload]
        assert not missing, f"{len(missing)} acknowledged messages not retained: {missing[:5]}"
        # ... and queued for the persistent session.
        with connected("127.0.0.1", port, "durable", clean=False, session_present=True) as sub:
            queued = collect(sub, set(acked), ack=True)
        missing = [topic for topic, payload in acked.items() if queued.get(topic) != payload]
        assert not missing, f"{len(missing)} acknowledged messages not queued: {missing[:5]}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()


def collect(client: RawClient, wanted: set[str], ack: bool,
            timeout: float = 30.0) -> dict[str, bytes]:
    """PUBLISHes received until every wanted topic was seen (or the deadline passed)."""
    got: dict[str, bytes] = {}
    deadline = time.monotonic() + timeout
    while not wanted <= got.keys() and time.monotonic() < deadline:
        try:
            packet = client.recv(max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        assert isinstance(packet, Publish), packet
        got[packet.topic] = packet.payload
        if ack and packet.qos == 1:
            client.send(Puback(packet.packet_id))
    return got
