"""Broker counters, read by $SYS topics and (later) the metrics endpoint."""

from __future__ import annotations

from collections import Counter


class Stats:
    __slots__ = (
        "messages_received", "messages_sent", "messages_dropped", "publish_received",
        "connections_total", "connections_refused", "close_reasons", "bytes_received",
        "bytes_sent",
    )

    def __init__(self) -> None:
        self.messages_received = 0  # PUBLISH packets from clients
        self.messages_sent = 0  # PUBLISH packets to clients
        self.messages_dropped = 0  # to slow consumers (QoS 0) or full offline queues (QoS 1/2)
        self.publish_received = 0
        self.connections_total = 0
        self.connections_refused = 0
        self.close_reasons: Counter[str] = Counter()
        self.bytes_received = 0
        self.bytes_sent = 0
