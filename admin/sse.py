"""Live logs and events as Server-Sent Events (product.md §6; connector-spec §8, §10).

    GET /api/v1/connectors/<cid>/logs/stream?type=event|debug&identity=&ip=&backlog=N
    GET /api/v1/connectors/<cid>/events/stream?identity=&type=data_in,connect
    GET /api/v1/connectors/<cid>/events          (WebSocket, connector-spec §10; same filters)

A stream is ``text/event-stream``: one message per log entry (``event: event`` or ``event:
debug``, ``id:`` the entry's sequence number in its ring, ``data:`` the entry as JSON) or per
event (``event:`` its type, ``data:`` the §10 event object; no ``id``: events are not kept, so
there is nothing to resume from). A comment line (``: ping``) every ``heartbeat`` seconds
keeps proxies from closing an idle stream.

Logs come from the ring's live subscription (``LogRing.subscribe``); a log stream resumes
after ``Last-Event-ID`` from what the ring still holds, or starts with the last ``backlog``
matching entries. Events come from ONE listener in ``service.event_listeners`` per app, there
only while an events stream is open (the service builds no ``data_in`` event nobody takes).

The WebSocket variant sends each event as one JSON text message (the §10 object) and an
overflow notice as ``{"type": "overflow", "dropped": n}``; it shares the outboxes, filters,
listener and counters of the SSE streams (kind ``events``).

Never a cost to the device path: entries wait in a bounded outbox per stream; a reader more
than ``queue_limit`` entries behind loses the oldest and is told how many
(``event: overflow``, ``data: {"dropped": n}``) before the entries that follow. Streams end
when the client goes away (noticed within ``POLL`` seconds) and when the app shuts down (a
stream stuck writing to a client that does not read is aborted), so ``runner.cleanup()`` never
waits on them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from typing import Any

from aiohttp import web

from broker.gateway.errors import ServiceError
from broker.gateway.events import EVENT_TYPES, Event
from broker.gateway.logs import KINDS, Entry, Filter, LogRing

QUEUE_LIMIT = 1000  # entries waiting per stream; beyond it the oldest are dropped
HEARTBEAT = 15.0  # seconds of silence before a ": ping" comment
POLL = 1.0  # an idle stream checks this often that its client is still connected
RETRY_MS = 3000  # the reconnection delay EventSource clients are told
BACKLOG_CHUNK = 500  # backlog entries per write

# An outbox item: (id or None, SSE event name, the JSON object).
Item = tuple[int | None, str, Any]


class Stream:
    """One open stream: its bounded outbox and what wakes its writer."""

    __slots__ = ("kind", "items", "limit", "dropped", "wake", "closed", "writing", "request",
                 "cid", "identity", "types")

    def __init__(self, kind: str, limit: int, request: web.Request) -> None:
        self.kind = kind  # "logs" | "events"
        self.items: deque[Item] = deque()
        self.limit = limit
        self.dropped = 0  # dropped since the last overflow notice
        self.wake = asyncio.Event()
        self.closed = False
        self.writing = False
        self.request = request
        # events streams only: what this stream wants
        self.cid = ""
        self.identity: str | None = None
        self.types: frozenset[str] | None = None

    def push(self, item: Item) -> None:
        """Called on the device path: never blocks, never grows beyond ``limit``."""
        items = self.items
        if len(items) >= self.limit:
            items.popleft()
            self.dropped += 1
        items.append(item)
        self.wake.set()

    def wants(self, cid: str, event: Event) -> bool:
        return (cid == self.cid
                and (self.identity is None or event.get("identity") == self.identity)
                and (self.types is None or event.get("type") in self.types))

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


def _frame(item: Item) -> bytes:
    ident, name, obj = item
    data = json.dumps(obj, default=str, separators=(",", ":"))
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: {data}\n\n".encode()


class Streams:
    """The app's open streams, their one event listener, and their counters (``/metrics``)."""

    def __init__(self, service: Any, queue_limit: int = QUEUE_LIMIT,
                 heartbeat: float = HEARTBEAT) -> None:
        self.service = service
        self.queue_limit = queue_limit
        self.heartbeat = heartbeat
        self.open: set[Stream] = set()
        self._events: set[Stream] = set()
        self.closing = False
        self.opened: Counter[str] = Counter()  # streams opened, by kind
        self.sent: Counter[str] = Counter()  # entries/events written, by kind
        self.dropped: Counter[str] = Counter()  # dropped from outboxes, by kind

    # -- the service's event listener, present while an events stream is open -------------

    def _on_event(self, cid: str, event: Event) -> None:
        for stream in self._events:
            if stream.wants(cid, event):
                stream.push((None, event["type"], event))

    def _add(self, stream: Stream) -> None:
        if self.closing:
            raise ServiceError(503, "shutting_down", "the server is stopping")
        self.open.add(stream)
        self.opened[stream.kind] += 1
        if stream.kind == "events":
            if not self._events:
                self.service.event_listeners.append(self._on_event)
            self._events.add(stream)

    def _remove(self, stream: Stream) -> None:
        self.open.discard(stream)
        self.dropped[stream.kind] += stream.dropped  # dropped but never reported
        stream.dropped = 0
        if stream in self._events:
            self._events.discard(stream)
            if not self._events and self._on_event in self.service.event_listeners:
                self.service.event_listeners.remove(self._on_event)

    async def close_all(self, app: web.Application | None = None) -> None:
        """``on_shutdown``: end every stream; one blocked on a client that does not read is
        aborted (its pending write would never finish)."""
        self.closing = True
        for stream in list(self.open):
            stream.close()
            transport = stream.request.transport
            if stream.writing and transport is not None:
                transport.abort()

    # -- writing ------------------------------------------------------------------------

    async def serve(self, request: web.Request, stream: Stream,
                    earlier: list[Item]) -> web.StreamResponse:
        """Send ``earlier`` (the backlog), then the outbox until the stream ends."""
        resp = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each message on at once
        })
        try:
            await resp.prepare(request)
            await self._write(stream, resp, f"retry: {RETRY_MS}\n\n".encode())
            for start in range(0, len(earlier), BACKLOG_CHUNK):
                chunk = earlier[start:start + BACKLOG_CHUNK]
                await self._write(stream, resp, b"".join(_frame(item) for item in chunk))
                self.sent[stream.kind] += len(chunk)
            await self._pump(stream, resp)
        except ConnectionError:
            pass  # the client went away, or the stream was aborted at shutdown
        finally:
            self._remove(stream)
        return resp

    async def _write(self, stream: Stream, resp: web.StreamResponse, data: bytes) -> None:
        stream.writing = True
        try:
            await resp.write(data)
        finally:
            stream.writing = False

    async def _pump(self, stream: Stream, resp: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        beat_at = loop.time() + self.heartbeat
        while not stream.closed:
            if not stream.items and not stream.dropped:
                stream.wake.clear()
                wait = min(POLL, beat_at - loop.time())
                if wait > 0:
                    try:
                        async with asyncio.timeout(wait):
                            await stream.wake.wait()
                    except TimeoutError:
                        pass
                if stream.closed or stream.gone():
                    return
                if not stream.items and not stream.dropped:
                    if loop.time() >= beat_at:
                        await self._write(stream, resp, b": ping\n\n")
                        beat_at = loop.time() + self.heartbeat
                    continue
            await self._write(stream, resp, self._take(stream))
            beat_at = loop.time() + self.heartbeat

    def _take(self, stream: Stream) -> bytes:
        parts: list[bytes] = []
        if stream.dropped:
            parts.append(b'event: overflow\ndata: {"dropped":%d}\n\n' % stream.dropped)
            self.dropped[stream.kind] += stream.dropped
            stream.dropped = 0
        items = stream.items
        self.sent[stream.kind] += len(items)
        parts.extend(_frame(item) for item in items)
        items.clear()
        return b"".join(parts)


STREAMS_KEY: web.AppKey[Streams] = web.AppKey("streams", Streams)


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def _backlog(request: web.Request, ring: LogRing) -> int:
    raw = request.query.get("backlog", "0")
    if not raw.isdigit():
        raise _bad("backlog must be a non-negative integer")
    return min(int(raw), ring.entries.maxlen or len(ring))


def _last_event_id(request: web.Request, ring: LogRing) -> int | None:
    """The sequence number to resume after; None if absent, not ours, or from an earlier
    run of the process (larger than any number this ring gave)."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw.isdigit():
        return None
    last = int(raw)
    return last if last <= ring.appended else None


async def logs_stream(request: web.Request) -> web.StreamResponse:
    streams = request.app[STREAMS_KEY]
    service = streams.service
    cid = request.match_info["cid"]
    kind = request.query.get("type", "event")
    if kind not in KINDS:
        raise _bad(f"type must be one of {', '.join(KINDS)}")
    service.getGatewaySettings(connector_id=cid)  # 404 for an unknown connector
    ring = service.logs[cid].ring(kind)
    flt = Filter(identity=request.query.get("identity") or None,
                 ip=request.query.get("ip") or None)
    backlog = _backlog(request, ring)
    last = _last_event_id(request, ring)
    # The backlog and the subscription in one step on the loop: nothing missed, nothing twice.
    earlier: list[Item] = []
    if last is not None:
        earlier = [(n, kind, e) for n, e in ring.numbered() if n > last and flt(e)]
    elif backlog:
        earlier = [(n, kind, e) for n, e in ring.numbered() if flt(e)][-backlog:]
    stream = Stream("logs", streams.queue_limit, request)
    streams._add(stream)

    def deliver(entry: Entry) -> None:
        stream.push((ring.appended, kind, entry))  # called right after the append: its number

    subscription = ring.subscribe(flt, callback=deliver)
    try:
        return await streams.serve(request, stream, earlier)
    finally:
        subscription.close()


def _events_stream(request: web.Request) -> Stream:
    """An events stream for the request's connector and filters (400/404 before anything)."""
    streams = request.app[STREAMS_KEY]
    cid = request.match_info["cid"]
    types: frozenset[str] | None = None
    raw = request.query.get("type", "")
    if raw:
        types = frozenset(t.strip() for t in raw.split(",") if t.strip())
        unknown = sorted(types - set(EVENT_TYPES))
        if unknown or not types:
            raise _bad(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    streams.service.getGatewaySettings(connector_id=cid)  # 404 for an unknown connector
    stream = Stream("events", streams.queue_limit, request)
    stream.cid = cid
    stream.identity = request.query.get("identity") or None
    stream.types = types
    return stream


async def events_stream(request: web.Request) -> web.StreamResponse:
    stream = _events_stream(request)
    streams = request.app[STREAMS_KEY]
    streams._add(stream)
    return await streams.serve(request, stream, [])


async def events_websocket(request: web.Request) -> web.StreamResponse:
    """connector-spec §10's WebSocket delivery: one JSON text message per event."""
    stream = _events_stream(request)
    streams = request.app[STREAMS_KEY]
    # timeout: how long our close waits for the client's; a stopping server waits no longer.
    ws = web.WebSocketResponse(heartbeat=streams.heartbeat, timeout=1.0)
    if not ws.can_prepare(request).ok:
        raise _bad("this route is a WebSocket: send an Upgrade request")
    await ws.prepare(request)
    streams._add(stream)
    reader = asyncio.ensure_future(ws.receive())  # the client's close (it sends nothing else)
    try:
        while not stream.closed and not ws.closed:
            if not stream.items and not stream.dropped:
                stream.wake.clear()
                waker = asyncio.ensure_future(stream.wake.wait())
                await asyncio.wait((reader, waker), return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                if reader.done():
                    break  # closed by the client (or a message we do not take)
                continue
            frames = []
            if stream.dropped:
                streams.dropped["events"] += stream.dropped
                frames.append(json.dumps({"type": "overflow", "dropped": stream.dropped}))
                stream.dropped = 0
            frames += [json.dumps(event, default=str, separators=(",", ":"))
                       for _, _, event in stream.items]
            streams.sent["events"] += len(stream.items)
            stream.items.clear()
            stream.writing = True  # a shutdown aborts a send stuck on a client not reading
            try:
                for frame in frames:
                    await ws.send_str(frame)
            finally:
                stream.writing = False
    except ConnectionError:
        pass  # the client went away
    finally:
        reader.cancel()
        streams._remove(stream)
        await ws.close()
    return ws


def setup(app: web.Application, service: Any, queue_limit: int = QUEUE_LIMIT,
          heartbeat: float = HEARTBEAT) -> None:
    """The two stream routes for ``service`` (a ``Device2Service``)."""
    streams = Streams(service, queue_limit, heartbeat)
    app[STREAMS_KEY] = streams
    app.router.add_get("/api/v1/connectors/{cid}/logs/stream", logs_stream)
    app.router.add_get("/api/v1/connectors/{cid}/events/stream", events_stream)
    app.router.add_get("/api/v1/connectors/{cid}/events", events_websocket)
    app.on_shutdown.append(streams.close_all)
