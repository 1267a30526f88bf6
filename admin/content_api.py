"""Admin content routes (product.md §6, connector-spec §7), under the admin API's bearer token:

    GET    /api/v1/connectors/<cid>/content        list of {id, type, length, updated, meta,
                                                   sha256}
    PUT    /api/v1/connectors/<cid>/content/<id>   raw body, streamed; Content-Type = its MIME
                                                   type, X-Content-Meta = meta → 201 made /
                                                   200 replaced, with the info; 413 too_large
    GET    /api/v1/connectors/<cid>/content/<id>   the body; Range → 206, 416
    HEAD   /api/v1/connectors/<cid>/content/<id>   the info in headers (Content-Type,
                                                   Content-Length, ETag = "sha256",
                                                   Last-Modified, X-Content-Meta)
    DELETE /api/v1/connectors/<cid>/content/<id>   200 {}

The PUT body is streamed to disk (admin/content_io.py), so the admin app's ``client_max_size``
does not bound it; ``content.max_size`` does. Errors are the admin API's JSON
``{status, code, message}``.
"""

from __future__ import annotations

from aiohttp import web

from admin.app import SERVICE_KEY, error, reply
from admin.content_io import expect_within, info_headers, receive_body, send_body
from broker.gateway.content import DEFAULT_MAX_SIZE

META_HEADER = "X-Content-Meta"
BASE = "/api/v1/connectors/{cid}/content"


async def list_content(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return reply(service.contentList(connector_id=request.match_info["cid"]))


async def put_content(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    upload = service.content_begin(
        id=request.match_info["id"], type=request.headers.get("Content-Type"),
        meta=request.headers.get(META_HEADER), connector_id=request.match_info["cid"])
    await receive_body(request, upload)
    info, created = service.content_commit(upload)
    return reply(info, 201 if created else 200)


async def get_content(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    cid, content_id = request.match_info["cid"], request.match_info["id"]
    meta_header: dict[str, str] = {}
    if request.method == "HEAD":
        info = service.contentInfo(id=content_id, connector_id=cid)
        if info["meta"]:
            meta_header[META_HEADER] = info["meta"]
        return web.Response(headers={**info_headers(info), **meta_header,
                                     "Content-Length": str(info["length"])})
    info, body = service.content_open(id=content_id, connector_id=cid)
    if info["meta"]:
        meta_header[META_HEADER] = info["meta"]
    return await send_body(request, info, body, error, meta_header)


async def delete_content(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    service.contentDelete(id=request.match_info["id"], connector_id=request.match_info["cid"])
    return reply(None)


def setup(app: web.Application) -> None:
    service = app[SERVICE_KEY]

    def limit() -> int:
        return service.content.max_size if service.content is not None else DEFAULT_MAX_SIZE

    app.router.add_get(BASE, list_content)
    app.router.add_put(BASE + "/{id}", put_content, expect_handler=expect_within(limit, error))
    app.router.add_get(BASE + "/{id}", get_content)  # HEAD too: the info in headers
    app.router.add_delete(BASE + "/{id}", delete_content)
