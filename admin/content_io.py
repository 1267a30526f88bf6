"""Content bodies over HTTP, shared by the device API (connector-spec §6.7) and the admin API:
byte ranges, downloads streamed from the open body, uploads streamed into the store.

Ranges (RFC 9110 §14): one range per request, ``bytes=first-last``, ``bytes=first-`` or the
suffix ``bytes=-n``. A satisfiable range answers 206 with ``Content-Range: bytes a-b/len``; a
range starting at or past the end (or ``bytes=-0``, or any range of an empty body) answers 416
with ``Content-Range: bytes */len``. A header that is not a single byte range (another unit,
several ranges, bad syntax) is ignored and the whole body answers 200, as the RFC allows.
``If-Range`` with a value other than the current ``ETag`` (the body's sha256) or
``Last-Modified`` also gives the whole body. Every answer says ``Accept-Ranges: bytes``.

File reads and writes run in the default executor, a chunk at a time, so a 100 MB body never
stalls the event loop; the upload limit is enforced while streaming (and up front from
``Content-Length``), and a refused or failed upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any, BinaryIO

from aiohttp import web

from broker.gateway.content import Upload, too_large

READ_CHUNK = 1024 * 1024
UPLOAD_BUFFER = 1024 * 1024  # bytes gathered before one write in the executor
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)

ErrorResponse = Callable[[int, str, str], web.Response]


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, length: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte range asked for, or None for the whole body."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None  # another unit, several ranges or bad syntax: the whole body
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or length == 0:
            raise RangeNotSatisfiable
        return max(0, length - suffix), length - 1
    start = int(first)
    end = int(last) if last else length - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= length:
        raise RangeNotSatisfiable
    return start, min(end, length - 1)


def http_date(us: int) -> str:
    return formatdate(us / 1_000_000, usegmt=True)


def etag(info: Mapping[str, Any]) -> str:
    return f'"{info["sha256"]}"'


def info_headers(info: Mapping[str, Any]) -> dict[str, str]:
    """What describes a body: its type, validators and range support."""
    return {"Content-Type": info["type"], "ETag": etag(info),
            "Last-Modified": http_date(info["updated"]), "Accept-Ranges": "bytes"}


def _wanted_range(request: web.Request, info: Mapping[str, Any]) -> tuple[int, int] | None:
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() not in (etag(info),
                                                         http_date(info["updated"])):
        return None  # the client's partial copy is of another version
    return parse_range(request.headers.get("Range"), info["length"])


async def send_body(request: web.Request, info: Mapping[str, Any], body: BinaryIO,
                    error: ErrorResponse,
                    headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Stream ``body`` (closed here) as ``info`` describes it, honouring ``Range``; a 416 is
    made with ``error`` (status, code, message) plus its ``Content-Range``."""
    running: asyncio.Future[bytes] | None = None
    try:
        length = info["length"]
        try:
            wanted = _wanted_range(request, info)
        except RangeNotSatisfiable:
            response = error(416, "range_not_satisfiable",
                             f"the range is outside the {length}-byte body")
            response.headers["Content-Range"] = f"bytes */{length}"
            response.headers["Accept-Ranges"] = "bytes"
            return response
        first, last = wanted if wanted is not None else (0, length - 1)
        out = web.StreamResponse(status=200 if wanted is None else 206,
                                 headers={**info_headers(info), **(headers or {})})
        if wanted is not None:
            out.headers["Content-Range"] = f"bytes {first}-{last}/{length}"
        out.content_length = last - first + 1
        await out.prepare(request)
        if request.method != "HEAD":
            loop = asyncio.get_running_loop()
            fd = body.fileno()
            position = first
            while position <= last:
                size = min(READ_CHUNK, last - position + 1)
                running = loop.run_in_executor(None, os.pread, fd, size, position)
                chunk = await running
                if not chunk:
                    break  # the file is shorter than its metadata: end early (never expected)
                await out.write(chunk)
                position += len(chunk)
        await out.write_eof()
        return out
    finally:
        if running is not None and not running.done():
            # Cancelled while a read runs in the executor: close the file after it.
            running.add_done_callback(lambda _: body.close())
        else:
            body.close()


async def receive_body(request: web.Request, upload: Upload) -> None:
    """Stream the request body into ``upload`` and make it durable (``Upload.finish``), all
    file work in the executor. Over the limit: 413 ``too_large`` (from ``Content-Length`` before
    reading). On any failure, cancellation included, the upload is aborted."""
    loop = asyncio.get_running_loop()
    running: asyncio.Future[None] | None = None
    try:
        declared = request.content_length
        if declared is not None:
            upload.check(declared)
        buffer = bytearray()
        async for chunk in request.content.iter_any():
            upload.check(len(buffer) + len(chunk))
            buffer += chunk
            if len(buffer) >= UPLOAD_BUFFER:
                data, buffer = bytes(buffer), bytearray()
                running = loop.run_in_executor(None, upload.write, data)
                await running
        if buffer:
            running = loop.run_in_executor(None, upload.write, bytes(buffer))
            await running
        running = loop.run_in_executor(None, upload.finish)
        await running
    except BaseException:
        if running is not None and not running.done():
            # The file is still being written in the executor: abort once it is done.
            running.add_done_callback(lambda _: upload.abort())
        else:
            upload.abort()
        raise


def expect_within(limit: Callable[[], int], error: ErrorResponse
                  ) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """An ``Expect: 100-continue`` handler that refuses a declared body over ``limit()`` with
    413 before the client sends it, and otherwise lets it come."""

    async def handler(request: web.Request) -> web.StreamResponse | None:
        declared = request.content_length
        size = limit()
        if declared is not None and declared > size:
            exc = too_large(size)
            return error(exc.status, exc.code, exc.message)
        expect = request.headers.get("Expect", "")
        if expect.lower() != "100-continue":
            return error(417, "expectation_failed", f"unknown Expect: {expect}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
        return None

    return handler
