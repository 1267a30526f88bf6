"""Resource reads and writes of the device HTTP API (connector-spec §6.1–§6.4, §6.6).

    POST /onep:v1/stack/alias            write: body ``a1=v1&a2=v2`` → 204
    GET  /onep:v1/stack/alias?a1&a2      read → 200 ``a1=v1&a2=v2`` (204 if nothing)
                                         with ``Request-Timeout``: long poll (longpoll.py)
    POST /onep:v1/stack/alias?r1&r2      hybrid: write the body, then read r1, r2
    POST /onep:v1/stack/record           ``alias=a&<ts>=<v>&<ts>=<v>&alias=b&…`` → 204, or
                                         409 ``a=<ts>,<ts>`` listing the points refused
    GET  /timestamp                      seconds since the epoch (no auth)

Every value of a write is stored at one server timestamp. Undefined aliases are not errors:
they go to the ``data_in`` event only (§4.4). An invalid value for a defined resource is
logged (``invalid_value``) and not stored; the write answers 400 ``invalid_value`` only when
every alias in it was invalid (§4.3). A read returns ``set`` for settable resources, else
``reported``; aliases without a value are left out.

Durability (product.md §5): a write is answered only once the group commit holding it is on
disk. The write joins the broker's group committer like an MQTT PUBLISH, so concurrent HTTP
writes share one fsync; if that commit fails the answer is 500 ``storage_error``.

Record: each ``<ts>`` is seconds, milliseconds or microseconds by the §5.2 rule (below 1e11,
below 1e14, else). A point is refused (and listed in the 409 body) when it lies more than 5
minutes in the future, repeats an alias and timestamp of the same request, or has the
timestamp of the stored value of that alias (we keep the latest value per alias, not a
history). The other points are stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from admin.content_io import http_date
from admin.device_http.auth import authenticate
from admin.device_http.context import (
    CONNECTOR,
    MIRROR,
    POLLS,
    SERVICE,
    SUBMIT,
    TEXT,
    ctx,
    form,
    no_content,
    text,
    tls_info,
)
from admin.device_http.forms import bad_form, parse_body, parse_pairs, query_of
from admin.device_http.longpoll import if_modified_since, request_timeout
from broker.gateway.errors import ServiceError
from broker.gateway.resources import batch_timestamp_us, parse_value, value_text

FUTURE_LIMIT_US = 300_000_000  # record: points more than 5 minutes ahead are refused
_TIMESTAMP = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)

Entries = list[tuple[object, Mapping[str, Any]]]


class _Stored:
    """The ``done`` of a grouped write: resolves the request's future once committed. It is
    its own ``conn``: a failed commit (the broker closes the ``conn`` of every write it held)
    fails the request with 500 ``storage_error`` instead of leaving it waiting."""

    __slots__ = ("future", "conn")

    def __init__(self, future: asyncio.Future[ServiceError | None]) -> None:
        self.future = future
        self.conn = self

    def __call__(self, error: ServiceError | None) -> None:
        if not self.future.done():
            self.future.set_result(error)

    def close(self, reason: str, detail: str = "") -> None:
        if not self.future.done():
            self.future.set_exception(ServiceError(500, "storage_error", detail or reason))


async def store(request: web.Request, identity: str, entries: Entries) -> None:
    """A device write, answered after its commit (then mirrored to ``$data`` subscribers)."""
    service, cid = request.app[SERVICE], request[CONNECTOR]
    submit = request.app[SUBMIT]
    # §2.2: a write over plain HTTP came through the devmode endpoint; over TLS it did not.
    devmode = tls_info(request) is None
    if submit is None:  # no group committer (a bare service): its own transaction
        service.write_values(identity=identity, entries=entries, connector_id=cid,
                             devmode=devmode, **ctx(request))
    else:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ServiceError | None] = loop.create_future()
        service.submit_values(submit, _Stored(future), identity=identity, entries=entries,
                              connector_id=cid, devmode=devmode, **ctx(request))
        error = await future
        if error is not None:
            raise error
    mirror = request.app[MIRROR]
    if mirror is not None:
        mirror(cid, identity, entries)


async def body_pairs(request: web.Request) -> list[tuple[str, str]]:
    return parse_body(await request.read(), request.headers.get("Content-Type"))


def query_aliases(request: web.Request) -> list[str]:
    return list(dict.fromkeys(k for k, _ in parse_pairs(query_of(request.raw_path),
                                                          values_required=False)))


def _all_invalid(resources: Mapping[str, Mapping[str, Any]],
                 values: Mapping[str, str]) -> bool:
    """Every alias of the write is a defined resource and its value is invalid (§4.3)."""
    for alias, raw in values.items():
        definition = resources.get(alias)
        if definition is None:
            return False
        try:
            parse_value(definition, raw)
        except ServiceError:
            continue
        return False
    return bool(values)


def read(request: web.Request, identity: str, aliases: list[str]) -> web.Response:
    service, cid = request.app[SERVICE], request[CONNECTOR]
    values = service.read_values(identity=identity, aliases=aliases, connector_id=cid)
    if not values:
        return no_content()
    return form([(alias, value_text(values[alias])) for alias in aliases if alias in values])


async def post_alias(request: web.Request) -> web.Response:
    """Write (§6.1), or hybrid write/read (§6.3) when the query lists aliases."""
    identity = await authenticate(request)
    values = dict(await body_pairs(request))
    aliases = query_aliases(request)
    if values:
        service, cid = request.app[SERVICE], request[CONNECTOR]
        _, resources = service.device_connector(cid)
        await store(request, identity, [(None, values)])
        if _all_invalid(resources, values):
            raise ServiceError(400, "invalid_value", "no value of the write is valid")
    if aliases:
        return read(request, identity, aliases)
    return no_content()


async def get_alias(request: web.Request) -> web.Response:
    """Read (§6.2), or long poll (§6.5) with ``Request-Timeout``."""
    identity = await authenticate(request)
    aliases = query_aliases(request)
    timeout = request.headers.get("Request-Timeout")
    if timeout is None:
        return read(request, identity, aliases)
    return await long_poll(request, identity, aliases, request_timeout(timeout))


async def long_poll(request: web.Request, identity: str, aliases: list[str],
                    timeout: float) -> web.Response:
    service, cid = request.app[SERVICE], request[CONNECTOR]
    since = if_modified_since(request.headers.get("If-Modified-Since"))
    _, resources = service.device_connector(cid)
    defined = [alias for alias in aliases if alias in resources]
    if not defined:
        raise ServiceError(404, "not_found", "no listed alias is a defined resource")
    pending = service.pending_values(identity=identity, connector_id=cid)
    ready = {alias: pending[alias] for alias in defined
             if alias in pending and (since is None or pending[alias][1] > since)}
    polls = request.app[POLLS]
    if not ready:
        # No await between reading the pending values and registering: no set is missed.
        poll = polls.wait(cid, identity, defined, timeout)
        try:
            await poll.future
        finally:
            polls.finish(poll)  # also when the client went away (handler cancelled)
        ready = poll.values
        if not ready:
            return web.Response(status=304)
    polls.delivered(cid, identity, ready, ctx(request))
    newest = max(ts for _, ts in ready.values())
    return form([(alias, value_text(value)) for alias, (value, _) in ready.items()],
                **{"Last-Modified": http_date(newest)})


async def post_record(request: web.Request) -> web.Response:
    """Historical points (§6.4)."""
    identity = await authenticate(request)
    points: list[tuple[str, str, str]] = []
    alias: str | None = None
    for key, value in await body_pairs(request):
        if key == "alias":
            if not value:
                raise bad_form("alias= needs a resource alias")
            alias = value
        elif alias is None:
            raise bad_form("a point comes before any alias=")
        elif not _TIMESTAMP.fullmatch(key):
            raise bad_form(f"{key[:40]!r} is not a timestamp")
        else:
            points.append((alias, key, value))
    service, cid = request.app[SERVICE], request[CONNECTOR]
    now = service.clock()
    stored = service.getIdentityState(identity=identity, connector_id=cid)
    refused: dict[str, list[str]] = {}
    seen: set[tuple[str, int]] = set()
    entries: Entries = []
    for alias, ts_text, value in points:
        ts: int | float = float(ts_text) if "." in ts_text else int(ts_text)
        ts_us = batch_timestamp_us(ts, now)
        if (ts_us > now + FUTURE_LIMIT_US or (alias, ts_us) in seen
                or stored.get(alias, {}).get("timestamp") == ts_us):
            refused.setdefault(alias, []).append(ts_text)
            continue
        seen.add((alias, ts_us))
        entries.append((ts, {alias: value}))
    if entries:
        await store(request, identity, entries)
    if refused:
        body = "&".join(f"{quote(a, safe='')}={','.join(ts)}" for a, ts in refused.items())
        return text(409, body)
    return no_content()


async def timestamp(request: web.Request) -> web.Response:
    """§6.6: the server's time in whole seconds, for devices without a clock."""
    return web.Response(text=str(request.app[SERVICE].clock() // 1_000_000),
                        content_type=TEXT, charset="utf-8")
