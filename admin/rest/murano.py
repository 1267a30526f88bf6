"""MuranoCLI-compatible aliases (connector-spec §11's table): the Murano business API paths
``/api:1/service/<pid>/device2…`` served by the same handlers as ``/api/v1``, with the same
bearer token, answers and errors.

    GET, PATCH  /api:1/service/<pid>/device2                      settings
    GET         …/device2/identity/?limit&offset&before&…          listIdentities
    GET, PUT, PATCH, DELETE …/device2/identity/<id>                one identity
    GET, PATCH  …/device2/identity/<id>/state                      its state
    POST        …/device2/identities (multipart identities, expire) bulk import
"""

from __future__ import annotations

from aiohttp import web

from admin.rest import connectors, identities

BASE = "/api:1/service/{cid}/device2"


def setup(app: web.Application) -> None:
    route = app.router
    route.add_get(BASE, connectors.get_settings)
    route.add_patch(BASE, connectors.update_settings)
    route.add_get(BASE + "/identity/", identities.list_identities)
    route.add_get(BASE + "/identity/{identity}", identities.get_identity)
    route.add_put(BASE + "/identity/{identity}", identities.put_identity)
    route.add_patch(BASE + "/identity/{identity}", identities.update_identity)
    route.add_delete(BASE + "/identity/{identity}", identities.remove_identity)
    route.add_get(BASE + "/identity/{identity}/state", identities.get_state)
    route.add_patch(BASE + "/identity/{identity}/state", identities.set_state)
    route.add_post(BASE + "/identities", identities.post_identities)
