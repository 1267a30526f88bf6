"""Connectors and their settings (product.md §6; connector-spec §2, §11 get/updateGatewaySettings).

``GET /connectors`` (the list) is ``admin.app``'s; here: ``POST /connectors`` makes one,
``GET /connectors/<cid>`` is getGatewaySettings, ``PATCH`` updateGatewaySettings (a deep
merge: ``{"provisioning": {"enabled": false}}`` changes one switch, a ``null`` inside an object
removes that key), answered with the new settings, and ``DELETE`` removes the connector with
everything it holds. The default connector cannot be removed: devices that name no connector
(no SNI, no known ``Host``) land on it (product.md §2).
"""

from __future__ import annotations

from aiohttp import web

from admin.app import reply
from admin.rest.params import PREFIX, bad, body, cid, service
from broker.gateway.errors import ServiceError

CREATE_FIELDS = ("id", "name", "description", "default")


async def create_connector(request: web.Request) -> web.Response:
    args = await body(request, CREATE_FIELDS)
    for name in ("id", "name", "description"):
        if args.get(name) is not None and not isinstance(args[name], str):
            raise bad(f"{name} must be a string")
    default = args.get("default", False)
    if not isinstance(default, bool):
        raise bad("default must be a boolean")
    made = service(request).create_connector(
        name=args.get("name") or "", description=args.get("description") or "",
        connector_id=args.get("id"), default=default)
    return reply(made, 201)


async def get_settings(request: web.Request) -> web.Response:
    return reply(service(request).getGatewaySettings(connector_id=cid(request)))


async def update_settings(request: web.Request) -> web.Response:
    patch = await body(request)
    if "connector_id" in patch:  # the service's own keyword, not a settings field
        raise bad("settings: unknown fields ['connector_id']")
    svc = service(request)
    svc.updateGatewaySettings(connector_id=cid(request), **patch)
    return reply(svc.getGatewaySettings(connector_id=cid(request)))


async def remove_connector(request: web.Request) -> web.Response:
    svc = service(request)
    connector = cid(request)
    summary = next((c for c in svc.list_connectors() if c["id"] == connector), None)
    if summary is None:
        raise ServiceError(404, "not_found", f"connector {connector!r} not found")
    if summary["default"]:
        raise ServiceError(409, "conflict", "the default connector cannot be removed")
    svc.remove_connector(connector)
    return reply(None)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/connectors", create_connector)
    app.router.add_get(PREFIX, get_settings)
    app.router.add_patch(PREFIX, update_settings)
    app.router.add_delete(PREFIX, remove_connector)
