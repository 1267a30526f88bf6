"""The admin API's aiohttp application: bearer-token auth, connectors, application keys and the
generic ``device2/<operation>`` route. Handlers call the Device2 service directly: it lives on
the same event loop. Errors are JSON ``{status, code, message}``; an empty result is 200 ``{}``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from admin import console, metrics, sse, webhooks
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service

SERVICE_KEY: web.AppKey[Device2Service] = web.AppKey("service", Device2Service)
TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
# The running broker server (``broker.transport.server.Server``), for metrics; None in tests
# that serve the admin app without a broker.
SERVER_KEY: web.AppKey[Any] = web.AppKey("server", object)
# Open without a token: the health check, and the web console's static files (the console asks
# the user for the token and sends it with every API call).
PUBLIC_PATHS = frozenset({"/api/v1/health", "/"})
PUBLIC_PREFIXES = ("/console/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def reply(value: Any, status: int = 200) -> web.Response:
    """A JSON response; ``None`` and ``{}`` both answer ``{}``."""
    return web.json_response({} if value is None else value, status=status, dumps=_dumps)


def error(status: int, code: str, message: str) -> web.Response:
    return reply({"status": status, "code": code, "message": message}, status)


def _authorized(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    expected = request.app[TOKEN_KEY]
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer auth (except public paths) and JSON errors for everything that goes wrong."""
    path = request.path
    public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
    if not public and not _authorized(request):
        return error(401, "unauthorized", "a valid bearer token is required")
    try:
        return await handler(request)
    except ServiceError as exc:
        return error(exc.status, exc.code, exc.message)
    except HttpProcessingError as exc:
        # A malformed body part found while a handler reads it (a multipart header with
        # control characters, a broken chunked encoding): the client's fault, not a 500.
        status = exc.code if 400 <= exc.code < 500 else 400
        return error(status, "bad_request", f"malformed request body: {exc.message}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
        message = exc.reason
        allow = exc.headers.get("Allow")
        if allow is not None:  # a 405 names the route's methods (RFC 9110 §15.5.6)
            message = f"{request.method} is not allowed here; allowed: {allow}"
        response = error(exc.status, code, message)
        if allow is not None:
            response.headers["Allow"] = allow
        return response


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``."""
    body = await request.read()
    if not body.strip():
        return {}
    try:
        value = json.loads(body)  # bytes: not UTF-8 is a ValueError too, never a 500
    except ValueError as exc:
        raise ServiceError(400, "bad_request", f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ServiceError(400, "bad_request", "the body must be a JSON object")
    return value


async def health(request: web.Request) -> web.Response:
    return reply({"status": "ok"})


async def list_connectors(request: web.Request) -> web.Response:
    return reply(request.app[SERVICE_KEY].list_connectors())


async def device2(request: web.Request) -> web.Response:
    args = await _json_object(request)
    cid, operation = request.match_info["cid"], request.match_info["operation"]
    return reply(request.app[SERVICE_KEY].call(cid, operation, args))


async def list_apps(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return reply(service.list_app_keys(connector_id=request.match_info["cid"]))


async def create_app_key(request: web.Request) -> web.Response:
    args = await _json_object(request)
    name = args.get("name", "")
    service = request.app[SERVICE_KEY]
    return reply(service.create_app_key(name=name, connector_id=request.match_info["cid"]))


async def delete_app_key(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    service.delete_app_key(key=request.match_info["key"], connector_id=request.match_info["cid"])
    return reply(None)


def create_app(service: Device2Service, token: str, server: Any = None) -> web.Application:
    """The admin application for ``service``, guarded by bearer ``token``; ``server`` is the
    running broker server (its statistics feed ``/metrics``)."""
    if not token:
        raise ValueError("the admin token must not be empty")
    app = web.Application(middlewares=[middleware], client_max_size=16 * 1024 * 1024)
    app[SERVICE_KEY] = service
    app[TOKEN_KEY] = token
    app[SERVER_KEY] = server
    app.router.add_get("/api/v1/health", health)
    app.router.add_get("/api/v1/connectors", list_connectors)
    app.router.add_post("/api/v1/connectors/{cid}/device2/{operation}", device2)
    app.router.add_get("/api/v1/connectors/{cid}/apps", list_apps)
    app.router.add_post("/api/v1/connectors/{cid}/apps", create_app_key)
    app.router.add_delete("/api/v1/connectors/{cid}/apps/{key}", delete_app_key)
    console.setup(app)
    sse.setup(app, service)
    webhooks.setup(app, service, server.config.webhooks if server is not None else None)
    metrics.setup(app, service, server)
    # Imported here: they use this module's helpers, so they load after it.
    from admin import content_api, openapi, rest
    rest.setup(app)
    content_api.setup(app)
    openapi.setup(app)
    return app
