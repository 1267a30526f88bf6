"""Content for devices (connector-spec §6.7, §7); every route needs device credentials.

    GET  /provision/download                 200 text/csv: one content id per line
    GET  /provision/download?id=X&info=true  200 text/csv: ``<type>,<length>,<updated>,<meta>``
                                             (``updated`` in seconds, as all HTTP device times)
    GET  /provision/download?id=X            200 the body with its stored Content-Type;
                                             ``Range`` → 206 / 416 (admin/content_io.py)
    POST /provision/upload?id=X[&meta=M]     raw body, ``Content-Type`` = its MIME type →
                                             204; 413 ``too_large`` over ``content.max_size``

``vendor=`` and ``model=`` query parameters are accepted and ignored. Unknown id → 404
``not_found``; an invalid id (empty, over 255 characters, ``/`` or control characters) → 400
``bad_request``. An upload is streamed to a temp file and stored only once complete, so a
refused or broken upload stores nothing; a stored one emits ``content_in`` (§10).
"""

from __future__ import annotations

from aiohttp import web

from admin.content_io import receive_body, send_body
from admin.device_http.auth import authenticate
from admin.device_http.context import CONNECTOR, SERVICE, ctx, failure, no_content
from admin.device_http.forms import parse_pairs, query_of
from broker.gateway.errors import ServiceError

CSV = "text/csv"


def _query(request: web.Request) -> dict[str, str | None]:
    return dict(parse_pairs(query_of(request.raw_path), values_required=False))


def _csv(body: str) -> web.Response:
    return web.Response(text=body, content_type=CSV, charset="utf-8")


async def download(request: web.Request) -> web.StreamResponse:
    await authenticate(request)
    service, cid = request.app[SERVICE], request[CONNECTOR]
    query = _query(request)
    content_id = query.get("id")
    if content_id is None:
        ids = [item["id"] for item in service.contentList(connector_id=cid)]
        return _csv("".join(f"{i}\n" for i in ids))
    if (query.get("info") or "").lower() == "true":
        info = service.contentInfo(id=content_id, connector_id=cid)
        updated = info["updated"] // 1_000_000
        return _csv(f"{info['type']},{info['length']},{updated},{info['meta']}\n")
    info, body = service.content_open(id=content_id, connector_id=cid)
    return await send_body(request, info, body, failure)


async def upload(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    service, cid = request.app[SERVICE], request[CONNECTOR]
    query = _query(request)
    content_id = query.get("id")
    if content_id is None:
        raise ServiceError(400, "bad_request", "the query needs id=<content id>")
    item = service.content_begin(id=content_id, type=request.headers.get("Content-Type"),
                                 meta=query.get("meta"), connector_id=cid)
    await receive_body(request, item)
    service.content_commit(item, identity=identity, **ctx(request))
    return no_content()
