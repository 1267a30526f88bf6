"""Late CONNECT decisions (broker/hooks.py AUTHENTICATING, handle_connect.connect_decided): a
hook may answer a CONNECT later (slow password hashing off the loop). Meanwhile the client's
further packets wait and are handled, in order, once it is accepted; nothing of them is handled
when it is refused; the CONNECT deadline still runs. Both Connection twins."""

from __future__ import annotations

from typing import Any

import pytest

from broker.core.connection import CLOSED, CONNECTED, WAITING_AUTH
from broker.core.handle_connect import connect_decided
from broker.hooks import AUTHENTICATING
from broker.mqtt import codec
from broker.mqtt.packets import Connack, Connect, Puback, Publish, Suback, Subscribe
from broker.security.policy import PlainPolicy
from tests.sansio import SansIO, each_connection  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("each_connection")


class LatePolicy(PlainPolicy):
    """Plain policy that defers every CONNECT with username "late" to the test."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.waiting: list[Any] = []

    def authenticate(self, client: Any, packet: Connect) -> int:
        if packet.username == "late":
            self.waiting.append(client)
            return AUTHENTICATING
        return super().authenticate(client, packet)


def harness() -> tuple[SansIO, LatePolicy]:
    h = SansIO()
    policy = LatePolicy(h.config.mqtt)
    h.broker.hooks = policy
    return h, policy


def test_packets_after_a_pending_connect_wait_then_run_in_order() -> None:
    h, policy = harness()
    sub = h.connect("sub")
    sub.send(Subscribe(1, [("t/#", 1)]))
    assert sub.packets() == [Suback(1, [1])]
    late = h.open()
    # CONNECT and two PUBLISHes in one read: the PUBLISHes must wait for the decision.
    late.send(codec.encode(Connect("dev", True, 60, username="late"))
              + codec.encode_publish("t/1", b"a", 1, packet_id=1)
              + codec.encode_publish("t/2", b"b", 0))
    assert late.conn.state == WAITING_AUTH
    assert late.packets() == [] and sub.packets() == []
    late.send(codec.encode_publish("t/3", b"c", 1, packet_id=2))  # more while waiting
    assert sub.packets() == []
    connect_decided(policy.waiting[0], 0)
    h.run()
    assert late.conn.state == CONNECTED
    assert late.packets() == [Connack(False, 0), Puback(1), Puback(2)]
    topics = [p.topic for p in sub.packets() if isinstance(p, Publish)]
    assert topics == ["t/1", "t/2", "t/3"]


def test_refused_late_connect_handles_nothing_that_came_after() -> None:
    h, policy = harness()
    sub = h.connect("sub")
    sub.send(Subscribe(1, [("t/#", 0)]))
    sub.packets()
    late = h.open()
    late.send(codec.encode(Connect("dev", True, 60, username="late"))
              + codec.encode_publish("t/1", b"a", 0))
    connect_decided(policy.waiting[0], 4)
    h.run()
    assert late.packets() == [Connack(False, 4)]
    assert late.conn.state == CLOSED and late.link.closed
    assert sub.packets() == []
    assert h.broker.stats.close_reasons["bad_credentials"] == 1


def test_a_decision_after_the_connection_closed_is_ignored() -> None:
    h, policy = harness()
    late = h.open()
    late.send(Connect("dev", True, 60, username="late"))
    assert late.conn.deadline() == h.config.mqtt.connect_timeout  # still the CONNECT deadline
    late.lose()
    connect_decided(policy.waiting[0], 0)
    h.run()
    assert late.conn.state == CLOSED
    assert "dev" not in h.broker.clients


def test_password_file_check_runs_off_the_loop(tmp_path: Any) -> None:
    """PlainPolicy hashes an unknown password through ``broker.offload`` (a thread in the
    server) and answers the CONNECT when it is done; a remembered one is answered at once."""
    from broker.config import load
    from broker.security.passwords import hash_password

    passwords = tmp_path / "passwords"
    passwords.write_text(f"ann:{hash_password(b'secret', n=1024)}\n")
    config = load(None, {"mqtt": {"password_file": str(passwords), "sys_interval": 0.0}})
    h = SansIO(config)
    h.broker.hooks = PlainPolicy(config.mqtt)
    offloaded: list[tuple[Any, Any]] = []
    h.broker.offload = lambda work, done: offloaded.append((work, done))
    client = h.open()
    client.send(Connect("a", True, 60, username="ann", password=b"secret"))
    assert client.packets() == [] and client.conn.state == WAITING_AUTH
    work, done = offloaded.pop()
    done(work())  # what the server's thread pool and loop do
    h.run()
    assert client.packets() == [Connack(False, 0)]
    again = h.open()
    again.send(Connect("b", True, 60, username="ann", password=b"secret"))
    assert again.packets() == [Connack(False, 0)] and not offloaded  # remembered: no hashing
    wrong = h.open()
    wrong.send(Connect("c", True, 60, username="ann", password=b"guess"))
    work, done = offloaded.pop()
    done(work())
    h.run()
    assert wrong.packets() == [Connack(False, 4)] and wrong.conn.state == CLOSED
