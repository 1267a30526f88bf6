"""Resource definitions (connector-spec §4.1; §11 get/add/update/removeGatewayResource).

``GET …/resources`` is the connector's ``{alias: definition}`` map; ``PUT …/resources/<alias>``
adds a definition (409 ``conflict`` if the alias exists: PUT does not replace, use PATCH),
``PATCH`` changes the given fields, ``DELETE`` removes it and every identity's value of it.
A definition is ``{format, unit, settable, sync, allowed, initial}``; a body may repeat the
``alias`` of the path.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.app import reply
from admin.rest.params import PREFIX, body, cid, same, service
from broker.gateway.resources import FIELDS

ROUTE = PREFIX + "/resources/{alias}"


async def _definition(request: web.Request) -> dict[str, Any]:
    given = await body(request, (*FIELDS, "alias"), where="resource")
    same(given.pop("alias", None), request.match_info["alias"], "alias")
    return given


async def list_resources(request: web.Request) -> web.Response:
    settings = service(request).getGatewaySettings(connector_id=cid(request))
    return reply(settings["resources"])


async def get_resource(request: web.Request) -> web.Response:
    return reply(service(request).getGatewayResource(alias=request.match_info["alias"],
                                                     connector_id=cid(request)))


async def add_resource(request: web.Request) -> web.Response:
    definition = await _definition(request)
    svc, alias = service(request), request.match_info["alias"]
    svc.addGatewayResource(alias=alias, connector_id=cid(request), **definition)
    return reply(svc.getGatewayResource(alias=alias, connector_id=cid(request)), 201)


async def update_resource(request: web.Request) -> web.Response:
    changes = await _definition(request)
    svc, alias = service(request), request.match_info["alias"]
    svc.updateGatewayResource(alias=alias, connector_id=cid(request), **changes)
    return reply(svc.getGatewayResource(alias=alias, connector_id=cid(request)))


async def remove_resource(request: web.Request) -> web.Response:
    service(request).removeGatewayResource(alias=request.match_info["alias"],
                                           connector_id=cid(request))
    return reply(None)


def setup(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/resources", list_resources)
    app.router.add_get(ROUTE, get_resource)
    app.router.add_put(ROUTE, add_resource)
    app.router.add_patch(ROUTE, update_resource)
    app.router.add_delete(ROUTE, remove_resource)
