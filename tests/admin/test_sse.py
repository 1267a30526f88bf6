"""Live logs and events over Server-Sent Events (admin/sse.py), read by a real streaming HTTP
client while devices connect and write over real MQTT."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from admin.sse import POLL, STREAMS_KEY
from tests.admin.gatewaysite import (
    TOKEN,
    Site,
    device,
    provision,
    refused_connect,
    start_gateway_site,
    write,
)


@dataclass
class Message:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


class SseClient:
    """A streaming GET, parsed into SSE messages (a blank line ends each)."""

    def __init__(self, site: Site, path: str, headers: dict[str, str] | None = None,
                 token: str | None = TOKEN) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=5)
        hdrs = {"Accept": "text/event-stream", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", path, headers=hdrs)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def close(self) -> None:
        self.resp.close()
        self.conn.close()

    def __enter__(self) -> SseClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def next(self, timeout: float = 5.0) -> Message | None:
        """The next message; None at the end of the stream."""
        assert self.conn.sock is not None
        self.conn.sock.settimeout(timeout)
        msg = Message()
        seen = False
        while True:
            line = self.resp.readline()
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if not text:
                if seen:
                    return msg
                continue
            seen = True
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                msg.comments.append(value)
            elif name == "event":
                msg.event = value
            elif name == "id":
                msg.id = value
            elif name == "data":
                msg.data = json.loads(value)
            elif name == "retry":
                msg.retry = int(value)

    def entries(self, count: int, timeout: float = 5.0) -> list[Message]:
        """The next ``count`` messages that carry data (skipping comments and retry)."""
        deadline = time.monotonic() + timeout
        found: list[Message] = []
        while len(found) < count:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            assert msg is not None, f"stream ended after {found}"
            if msg.data is not None:
                found.append(msg)
        return found

    def until(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            assert msg is not None, "stream ended"
            if predicate(msg):
                return msg


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site, stop = start_gateway_site(tmp_path)
    yield site
    stop()


def logs_path(site: Site, query: str = "") -> str:
    return f"/api/v1/connectors/{site.cid}/logs/stream{query}"


def events_path(site: Site, query: str = "") -> str:
    return f"/api/v1/connectors/{site.cid}/events/stream{query}"


def open_streams(site: Site) -> int:
    return site.call(lambda: len(site.app[STREAMS_KEY].open))


def test_logs_stream_shows_a_device_provision_connect_and_write(site: Site) -> None:
    with SseClient(site, logs_path(site, "?type=event")) as s:
        assert s.status == 200
        assert s.resp.getheader("Content-Type", "").startswith("text/event-stream")
        assert s.resp.getheader("Cache-Control") == "no-cache"
        first = s.next()
        assert first is not None and first.retry == 3000  # EventSource reconnect delay
        token = provision(site, "dev1")
        with device(site, token) as d:
            write(d, "temp", b"21.5")
            got = s.entries(3)
    assert [(m.event, m.data["type"], m.data["identity"]) for m in got] == [
        ("event", "provision", "dev1"), ("event", "connect", "dev1"),
        ("event", "data_in", "dev1")]
    assert got[2].data["detail"] == ["temp"] and got[2].data["ip"] == "127.0.0.1"
    assert got[2].data["protocol"] == "mqtt"
    ids = [int(m.id or 0) for m in got]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2] and ids[0] >= 1


def test_events_stream_delivers_connect_and_data_in(site: Site) -> None:
    token = provision(site, "dev1")
    with SseClient(site, events_path(site)) as s:
        assert s.status == 200
        with device(site, token) as d:
            write(d, "temp", b"21.5")
            got = s.entries(2)
    assert [m.event for m in got] == ["connect", "data_in"]
    assert got[0].id is None  # events are not kept: no id to resume from
    event = got[1].data
    assert event["type"] == "data_in" and event["identity"] == "dev1"
    assert [entry["values"] for entry in event["payload"]] == [{"temp": 21.5}]
    assert event["ip"] == "127.0.0.1" and event["protocol"] == "mqtt"


def test_events_stream_filters_by_type_and_identity(site: Site) -> None:
    token1, token2 = provision(site, "dev1"), provision(site, "dev2")
    with SseClient(site, events_path(site, "?type=data_in")) as only_data, \
            SseClient(site, events_path(site, "?identity=dev2&type=connect,data_in")) as dev2:
        with device(site, token1) as d1:
            write(d1, "temp", b"1")
        with device(site, token2) as d2:
            write(d2, "temp", b"2")
        got = only_data.entries(2)
        assert [(m.event, m.data["identity"]) for m in got] == [
            ("data_in", "dev1"), ("data_in", "dev2")]
        got = dev2.entries(2)
        assert [(m.event, m.data["identity"]) for m in got] == [
            ("connect", "dev2"), ("data_in", "dev2")]


def test_logs_stream_filters_by_identity(site: Site) -> None:
    token1, token2 = provision(site, "dev1"), provision(site, "dev2")
    with SseClient(site, logs_path(site, "?identity=dev2")) as s:
        with device(site, token1) as d1:
            write(d1, "temp", b"1")
        with device(site, token2) as d2:
            write(d2, "temp", b"2")
        got = s.entries(2)
    assert [(m.data["type"], m.data["identity"]) for m in got] == [
        ("connect", "dev2"), ("data_in", "dev2")]


def test_debug_stream_filters_by_ip(site: Site) -> None:
    """§8.2: the debug log filtered by IP; a refused CONNECT from another loopback address."""
    with SseClient(site, logs_path(site, "?type=debug&ip=127.0.0.2")) as by_ip, \
            SseClient(site, logs_path(site, "?type=debug")) as every:
        refused_connect(site, "127.0.0.1")
        refused_connect(site, "127.0.0.2")
        first = every.entries(1)[0]
        assert (first.event, first.data["type"], first.data["ip"]) == (
            "debug", "bad_credentials", "127.0.0.1")
        other = every.until(lambda m: m.data is not None and m.data["ip"] != "127.0.0.1")
        assert (other.data["type"], other.data["ip"]) == ("bad_credentials", "127.0.0.2")
        (only,) = by_ip.entries(1)  # the 127.0.0.1 entries came first but are not for it
        assert (only.data["type"], only.data["ip"]) == ("bad_credentials", "127.0.0.2")
        assert only.id == other.id  # the same ring, the same number


def test_backlog_and_last_event_id_resume(site: Site) -> None:
    ring = site.service.logs[site.cid].ring("debug")
    for _ in range(3):
        refused_connect(site)
    n = site.call(lambda: ring.appended)
    assert n >= 3
    with SseClient(site, logs_path(site, "?type=debug&backlog=3")) as s:
        backlog = s.entries(3)
    assert [int(m.id or 0) for m in backlog] == [n - 2, n - 1, n]
    assert site.call(lambda: [e for _, e in ring.numbered()][-3:]) == [m.data for m in backlog]
    # An EventSource reconnecting after id n-2 gets n-1 and n (not the backlog), then live.
    with SseClient(site, logs_path(site, "?type=debug&backlog=3"),
                   headers={"Last-Event-ID": str(n - 2)}) as s:
        assert [int(m.id or 0) for m in s.entries(2)] == [n - 1, n]
        refused_connect(site)
        (live,) = s.entries(1)
        assert int(live.id or 0) == n + 1
    # An id from an earlier run of the process (beyond this ring) falls back to backlog.
    last = site.call(lambda: ring.appended)
    with SseClient(site, logs_path(site, "?type=debug&backlog=1"),
                   headers={"Last-Event-ID": "99999"}) as s:
        assert [int(m.id or 0) for m in s.entries(1)] == [last]


@pytest.mark.parametrize("query,code", [
    ("?type=nope", "bad_request"), ("?backlog=-1", "bad_request"),
    ("?backlog=x", "bad_request")])
def test_logs_stream_bad_parameters(site: Site, query: str, code: str) -> None:
    status, _, body = site.request("GET", logs_path(site, query))
    assert status == 400 and json.loads(body)["code"] == code


def test_stream_errors(site: Site) -> None:
    status, _, body = site.request("GET", events_path(site, "?type=data_in,bogus"))
    assert status == 400 and "bogus" in json.loads(body)["message"]
    for path in ("/api/v1/connectors/nope/logs/stream", "/api/v1/connectors/nope/events/stream"):
        status, _, body = site.request("GET", path)
        assert status == 404 and json.loads(body)["code"] == "not_found"
        status, _, _ = site.request("GET", path, token=None)
        assert status == 401
    assert open_streams(site) == 0


def test_overflow_is_reported_and_bounded(site: Site) -> None:
    """More entries in one loop turn than the outbox holds: the oldest are dropped and the
    reader is told how many, before the newest ``queue_limit`` entries."""
    streams = site.app[STREAMS_KEY]
    limit = streams.queue_limit
    with SseClient(site, logs_path(site, "?type=debug")) as s:
        s.next()  # the retry line: the stream is subscribed

        def burst() -> None:
            logs = site.service.logs[site.cid]
            for n in range(limit + 250):
                logs.debug(n, "idle_timeout", identity=f"d{n}", ip="127.0.0.1")

        site.call(burst)
        notice = s.until(lambda m: m.event is not None)
        assert notice.event == "overflow" and notice.data == {"dropped": 250}
        got = s.entries(limit)
        assert [m.data["identity"] for m in (got[0], got[-1])] == ["d250", f"d{limit + 249}"]
        assert [int(m.id or 0) for m in (got[0], got[-1])] == [251, limit + 250]
    assert site.call(lambda: streams.dropped["logs"]) == 250


def test_slow_reader_never_stalls_the_loop_nor_grows(site: Site) -> None:
    """A client that stops reading: the server's writes block, its outbox stays bounded, the
    API still answers, and once it reads again every entry is either received or counted as
    dropped."""
    streams = site.app[STREAMS_KEY]
    limit = streams.queue_limit
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", site.port))
    sock.sendall(f"GET {logs_path(site, '?type=debug')} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    site.wait(lambda: len(streams.open) == 1)
    total = 0
    detail = "x" * 400
    for _ in range(40):  # 40 turns of 1000 entries, ~20 MB: far beyond any socket buffer
        def burst(start: int = total) -> None:
            logs = site.service.logs[site.cid]
            for n in range(start, start + 1000):
                logs.debug(n, "idle_timeout", identity=f"d{n}", detail=detail)
        site.call(burst)
        total += 1000
        assert site.call(lambda: max(len(s.items) for s in streams.open)) <= limit
    assert site.call(lambda: any(s.writing for s in streams.open))  # blocked on the client
    started = time.monotonic()
    status, _, _ = site.request("GET", "/api/v1/health")
    assert status == 200 and time.monotonic() - started < 1.0
    # Read everything now: received + reported drops == produced.
    received, dropped, buf = 0, 0, b""
    deadline = time.monotonic() + 30
    while received + dropped < total:
        assert time.monotonic() < deadline, (received, dropped)
        buf += sock.recv(1 << 20)
        *messages, buf = buf.split(b"\n\n")
        for message in messages:
            if b"event: overflow" in message:
                dropped += json.loads(message.split(b"data: ")[1])["dropped"]
            elif b"event: debug" in message:
                received += 1
    assert received + dropped == total and dropped > 0
    sock.close()
    site.wait(lambda: not streams.open)


def test_client_going_away_ends_the_stream_and_its_subscriptions(site: Site) -> None:
    streams = site.app[STREAMS_KEY]
    ring = site.service.logs[site.cid].ring("event")
    listeners_before = site.call(lambda: len(site.service.event_listeners))
    a = SseClient(site, events_path(site))
    b = SseClient(site, events_path(site, "?type=connect"))
    c = SseClient(site, logs_path(site))
    site.wait(lambda: len(streams.open) == 3)
    # One listener for the app, however many events streams are open.
    assert site.call(lambda: len(site.service.event_listeners)) == listeners_before + 1
    assert site.call(lambda: len(ring._subscribers)) == 1
    a.close()
    site.wait(lambda: len(streams.open) == 2, timeout=POLL + 3)
    assert site.call(lambda: len(site.service.event_listeners)) == listeners_before + 1
    b.close()
    c.close()
    # Noticed while idle (no entry to write), within the poll interval.
    site.wait(lambda: not streams.open, timeout=POLL + 3)
    assert site.call(lambda: len(site.service.event_listeners)) == listeners_before
    assert site.call(lambda: len(ring._subscribers)) == 0


def test_heartbeat_comment_keeps_an_idle_stream_open(site: Site) -> None:
    site.app[STREAMS_KEY].heartbeat = 0.2
    with SseClient(site, events_path(site)) as s:
        msg = s.until(lambda m: bool(m.comments), timeout=3)
        assert msg.comments == ["ping"] and msg.data is None


def test_runner_cleanup_ends_open_streams_promptly(tmp_path: Path) -> None:
    """Shutdown with a reading stream and one whose client stopped reading (its write is
    blocked): the runner's cleanup does not wait for them, the reader sees the end."""
    site, stop = start_gateway_site(tmp_path)
    streams = site.app[STREAMS_KEY]
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", site.port))
        stuck.sendall(f"GET {logs_path(site, '?type=debug')} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        with SseClient(site, events_path(site)) as reader:
            site.wait(lambda: len(streams.open) == 2)

            def flooded() -> bool:
                """One more burst; True once the stuck stream's write is blocked."""
                logs = site.service.logs[site.cid]
                for n in range(1000):
                    logs.debug(n, "idle_timeout", detail="y" * 2000)
                return any(s.writing for s in streams.open)

            site.wait(flooded, timeout=10)
            started = time.monotonic()
            site.cleanup()
            assert time.monotonic() - started < 3.0
            deadline = time.monotonic() + 3
            while reader.next(timeout=3) is not None:  # the retry line, then the end
                assert time.monotonic() < deadline
        assert not streams.open
    finally:
        stuck.close()
        stop()
