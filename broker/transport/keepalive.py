"""Deadlines of silent connections: the 5 s CONNECT deadline and 1.5x keepalive (``idle_timeout``).

A wheel of one-second buckets: a connection is filed under its deadline's second and examined
once when that second comes; if it was active meanwhile it is re-filed under its new deadline.
Traffic only stamps ``last_activity``; no timer is touched per packet and no sweep walks every
connection every second.
"""

from __future__ import annotations

import asyncio
import math

from broker.core.connection import CLOSED, NEW, Connection


class DeadlineWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, list[Connection]] = {}
        self._next_slot = math.floor(loop.time())
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = self._loop.call_later(1.0, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def watch(self, conn: Connection) -> None:
        deadline = conn.deadline()
        if deadline is None:
            return
        if conn.state == NEW:
            # The CONNECT still to come may set a keepalive that ends before the connect
            # deadline (MQTT-3.1.2-24): look again next second until it has arrived.
            deadline = min(deadline, self._loop.time() + 1.0)
        slot = max(math.ceil(deadline), self._next_slot)
        bucket = self._buckets.get(slot)
        if bucket is None:
            self._buckets[slot] = [conn]
        else:
            bucket.append(conn)

    def _tick(self) -> None:
        now = self._loop.time()
        while self._next_slot <= now:
            bucket = self._buckets.pop(self._next_slot, None)
            self._next_slot += 1
            if bucket is None:
                continue
            for conn in bucket:
                if conn.state == CLOSED:
                    continue
                deadline = conn.deadline()
                if deadline is None:
                    continue
                if deadline <= now:
                    what = "no CONNECT" if conn.session is None else "keepalive expired"
                    conn.close("idle_timeout", what)
                else:
                    self.watch(conn)
        self._handle = self._loop.call_later(1.0, self._tick)
