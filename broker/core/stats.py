"""Broker counters, read by $SYS topics and the admin API's ``/metrics``."""

from __future__ import annotations

from collections import Counter


class Stats:
    __slots__ = (
        "received_by_qos", "sent_by_qos", "packets_received", "messages_dropped",
        "publish_received", "connections_total", "connections_refused", "close_reasons",
        "bytes_received", "bytes_sent",
    )

    def __init__(self) -> None:
        # Lists indexed by QoS / packet type: one item increment on the hot path, no lookup.
        self.received_by_qos = [0, 0, 0]  # PUBLISH packets from clients
        self.sent_by_qos = [0, 0, 0]  # PUBLISH packets to clients
        self.packets_received = [0] * 16  # other control packets from clients, by packet type
        self.messages_dropped = 0  # to slow consumers (QoS 0) or full offline queues (QoS 1/2)
        self.publish_received = 0
        self.connections_total = 0
        self.connections_refused = 0
        self.close_reasons: Counter[str] = Counter()
        self.bytes_received = 0
        self.bytes_sent = 0

    @property
    def messages_received(self) -> int:
        return sum(self.received_by_qos)

    @property
    def messages_sent(self) -> int:
        return sum(self.sent_by_qos)
