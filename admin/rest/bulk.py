"""The streamed bulk import (connector-spec §3.5): ``POST …/identities`` with a CSV body.

The body is read in chunks (``request.content``), never whole, so its size is not bounded by
the app's ``client_max_size``: ``broker.gateway.bulk_csv.CsvRows`` turns each chunk into rows
and every ``BATCH`` rows go to the store in one write transaction
(``Device2Service.import_rows``). A row is written whole or not at all; the answer is
``{added, failed: [{line, identity, error, message}]}`` (200). A bad header refuses the whole
import (400) before anything is written. An import cut short (the client goes away) keeps the
batches committed before the cut: the import is many transactions, not one.

Bodies: ``text/csv`` (``?expire=<µs>`` applies to every row), or ``multipart/form-data`` with
the field ``identities`` (the CSV) and optionally ``expire``, as MuranoCLI sends
(connector-spec §11). The form's fields may come in any order, so the CSV part is first
spooled to a temporary file (memory up to ``SPOOL_MEMORY``, disk beyond), then imported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

from aiohttp import BodyPartReader, web

from admin.app import error, reply
from admin.rest.params import Query, bad, cid, service
from broker.gateway.bulk_csv import CsvRows, Row
from broker.gateway.errors import ServiceError
from broker.gateway.service import IMPORT_CHUNK

BATCH = IMPORT_CHUNK  # rows per store transaction
CHUNK = 64 * 1024  # bytes read from the body at a time
SPOOL_MEMORY = 1 << 20
CSV_TYPES = ("text/csv", "application/csv")
MAX_FIELD = 64  # bytes of a small multipart field (expire)

log = logging.getLogger(__name__)


class BodyCut(Exception):
    """The client went away before the end of the body."""


def is_bulk(request: web.Request) -> bool:
    return request.content_type in CSV_TYPES or request.content_type == "multipart/form-data"


def _expire(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not text.isdigit() or int(text) <= 0:
        raise bad("expire must be a µs timestamp")
    return int(text)


def _charset(charset: str | None) -> None:
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8",
                                                                         "us-ascii"):
        raise ServiceError(415, "unsupported_media_type", "the CSV must be UTF-8")


async def import_identities(request: web.Request) -> web.Response:
    svc, connector = service(request), cid(request)
    svc.getGatewaySettings(connector_id=connector)  # 404 before reading a byte
    expire = _expire(Query(request, ("expire",)).text("expire"))
    try:
        if request.content_type == "multipart/form-data":
            return reply(await _import_form(request, expire))
        _charset(request.charset)
        return reply(await import_stream(request, request.content.iter_chunked(CHUNK), expire))
    except BodyCut as cut:  # nobody is left to read an answer
        return error(400, "bad_request", str(cut))


async def import_stream(request: web.Request, chunks: AsyncIterator[bytes],
                        expire: int | None) -> dict[str, Any]:
    """Parse ``chunks`` as they come and import every ``BATCH`` rows."""
    svc, connector = service(request), cid(request)
    parser = CsvRows()
    pending: list[Row] = []
    seen: set[str] = set()
    result: dict[str, Any] = {"added": 0, "failed": []}

    def flush(rows: list[Row]) -> None:
        out = svc.import_rows(rows, expire=expire, seen=seen, connector_id=connector)
        result["added"] += out["added"]
        result["failed"].extend(out["failed"])

    try:
        async for chunk in chunks:
            pending.extend(parser.feed(chunk))
            while len(pending) >= BATCH:
                flush(pending[:BATCH])
                del pending[:BATCH]
            if parser.done:  # a syntax error: the rest is not read
                break
    except ConnectionResetError:
        message = (f"bulk import into {connector}: the client went away; "
                   f"{result['added']} identities added before the cut are kept")
        log.warning("%s", message)
        raise BodyCut(message) from None
    pending.extend(parser.close())
    for start in range(0, len(pending), BATCH):
        flush(pending[start:start + BATCH])
    return result


async def _import_form(request: web.Request, expire: int | None) -> dict[str, Any]:
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        try:
            expire = await _spool_form(request, spool, expire)
        except ConnectionResetError:
            message = "bulk import: the client went away before the end of the form"
            log.warning("%s", message)
            raise BodyCut(message + "; nothing was imported") from None
        spool.seek(0)

        async def chunks() -> AsyncIterator[bytes]:
            while data := spool.read(CHUNK):
                yield data

        return await import_stream(request, chunks(), expire)


async def _spool_form(request: web.Request, spool: IO[bytes], expire: int | None) -> int | None:
    """Copy the form's CSV into ``spool``; the ``expire`` of the query or of the form."""
    reader = await request.multipart()
    have_csv = False
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise bad("nested multipart bodies are not supported")
        if part.name == "identities":
            if have_csv:
                raise bad("the field identities is given more than once")
            have_csv = True
            _charset(part.get_charset(None))
            while chunk := await part.read_chunk(CHUNK):
                spool.write(chunk)
        elif part.name == "expire":
            raw = await part.read_chunk(MAX_FIELD + 1)
            if len(raw) > MAX_FIELD or await part.read_chunk(1):
                raise bad("expire must be a µs timestamp")
            if expire is not None:
                raise bad("give expire in the query or in the form, not both")
            try:
                expire = _expire(raw.decode("ascii"))
            except UnicodeDecodeError:
                raise bad("expire must be a µs timestamp") from None
        else:
            raise bad(f"unknown form field {part.name!r}: the form takes identities "
                      "(the CSV) and expire")
    if not have_csv:
        raise bad("the form field identities (the CSV) is missing")
    return expire
