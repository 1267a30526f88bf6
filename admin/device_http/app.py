"""The device HTTP API application (connector-spec §6): routes, connector selection, errors.

Connector selection (product.md §2, broker/gateway/hosts.py): over TLS, an SNI name of
``<cid>.m2.<domain>`` or ``<cid>.devmode-m2.<domain>`` selects connector ``<cid>``; else a
``Host`` of that form (the port and a trailing dot ignored, case-insensitive); else the default
connector (an address, ``localhost``). A name that names a connector that does not exist
answers 404 ``not_found`` (an SNI one is also logged as ``missing_sni`` in the default
connector's debug log).

Every failure is a ``text/plain`` body of one token (context.py); unknown routes are 404
``not_found``, a wrong method 405 ``method_not_allowed``, a body over ``client_max_size`` 413
``too_large``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from admin.content_io import expect_within
from admin.device_http import content, provision, stack
from admin.device_http.context import (
    CONNECTION_ID,
    CONNECTOR,
    DOMAIN,
    MIRROR,
    POLLS,
    REQUESTS,
    SERVICE,
    SUBMIT,
    Mirror,
    Submit,
    ctx,
    failure,
    tls_info,
)
from admin.device_http.longpoll import LongPolls
from broker.gateway.content import DEFAULT_MAX_SIZE
from broker.gateway.errors import ServiceError
from broker.gateway.hosts import connector_in_host
from broker.gateway.service import Device2Service
from broker.gateway.settings import CONNECTOR_ID_RE

log = logging.getLogger(__name__)

# Form bodies: a few values of at most 1 MiB each (§4.1), up to 3x longer percent-encoded.
FORM_MAX_SIZE = 4 * 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _select_connector(request: web.Request) -> str:
    """The request's connector id: the SNI's, else the Host's, else the default; 404
    ``not_found`` for a name that names no connector."""
    service, domain = request.app[SERVICE], request.app[DOMAIN]
    tls = tls_info(request)
    named = connector_in_host(tls.server_name if tls is not None else None, domain)
    by_sni = named is not None
    if named is None:
        named = connector_in_host(request.host, domain)
    try:
        if named is not None and not CONNECTOR_ID_RE.fullmatch(named):
            raise ServiceError(404, "not_found", "no such connector")
        # Unknown connector (named, or no default): ServiceError 404.
        return service.device_connector(named)[0]
    except ServiceError:
        if by_sni:
            _log_missing_sni(request, tls.server_name if tls is not None else None)
        raise


def _log_missing_sni(request: web.Request, name: str | None) -> None:
    service = request.app[SERVICE]
    try:
        default, _ = service.device_connector(None)
    except ServiceError:
        return  # no default connector: no log to keep it in
    service.logs[default].debug(service.clock(), "missing_sni",
                                detail=f"SNI {name!r} names no connector", **ctx(request))


def _reason(exc: web.HTTPException) -> str:
    if exc.status == 413:
        return "too_large"
    return exc.reason.lower().replace(" ", "_").replace("-", "_")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[CONNECTION_ID] = os.urandom(16).hex()
    try:
        request[CONNECTOR] = _select_connector(request)
        response = await handler(request)
    except ServiceError as exc:
        response = failure(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = failure(exc.status, _reason(exc), exc.reason)
    route = request.match_info.route.resource
    request.app[REQUESTS][(route.canonical if route is not None else "unmatched",
                           response.status)] += 1
    return response


def create_device_app(service: Device2Service, domain: str = "localhost",
                      submit: Submit | None = None,
                      mirror: Mirror | None = None) -> web.Application:
    """The device API for ``service``: device FQDNs under ``domain``; ``submit`` is the group
    committer's (writes share its commits), None to give each write its own transaction;
    ``mirror`` gets every committed write (the ``$data`` topics)."""
    app = web.Application(middlewares=[middleware], client_max_size=FORM_MAX_SIZE)
    app[SERVICE] = service
    app[DOMAIN] = domain
    app[SUBMIT] = submit
    app[MIRROR] = mirror
    app[REQUESTS] = Counter()
    polls = app[POLLS] = LongPolls(service)

    async def stop_polls(_: web.Application) -> None:
        polls.close()  # before the server waits for its handlers: polls answer 304 now

    app.on_shutdown.append(stop_polls)
    app.router.add_post("/onep:v1/stack/alias", stack.post_alias)
    app.router.add_get("/onep:v1/stack/alias", stack.get_alias, allow_head=False)
    app.router.add_post("/onep:v1/stack/record", stack.post_record)
    app.router.add_get("/timestamp", stack.timestamp, allow_head=False)
    app.router.add_post("/provision/activate", provision.activate)
    app.router.add_get("/provision/download", content.download, allow_head=False)

    def limit() -> int:
        return service.content.max_size if service.content is not None else DEFAULT_MAX_SIZE

    app.router.add_post("/provision/upload", content.upload,
                        expect_handler=expect_within(limit, failure))
    return app
