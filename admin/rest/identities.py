"""Identities, their state and their tags (connector-spec §3, §4.2, §9, §11).

- ``GET …/identities`` is listIdentities with query filters → ``{devices, total, mayLoadMore}``;
- ``POST …/identities`` with a JSON body is addIdentity (201 with the record); with a
  ``text/csv`` or ``multipart/form-data`` body it is the streamed bulk import
  (``admin.rest.bulk``);
- ``GET, PUT, PATCH, DELETE …/identities/<identity>``: getIdentity / addIdentity (201, 409 if it
  exists) / updateIdentity (lock, credentials, revoke, tags) / removeIdentity;
- ``GET, PATCH …/state``: getIdentityState / setIdentityState ``{alias: value}`` (answers the
  new state);
- ``GET, POST, DELETE …/tags``: the identity's tags (``?name=`` narrows the GET); POST
  ``{tags, replace}`` is addIdentityTag; DELETE takes ``{tags}`` in the body or
  ``?name=[&value=]`` (no value: every value of that name) and answers the tags left;
- ``GET …/connectors/<cid>/tags`` (listTagNames) and ``…/tags/<name>`` (listTagName:
  ``[{value, count}]``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin.app import reply
from admin.rest import bulk
from admin.rest.params import PREFIX, Query, bad, body, cid, same, service
from broker.gateway.errors import ServiceError
from broker.gateway.identities import MAX_LIMIT, ORDERS, SORT_FIELDS, STATUSES

COLLECTION = PREFIX + "/identities"
ITEM = COLLECTION + "/{identity}"
LIST_PARAMETERS = ("limit", "offset", "status", "identity", "ipaddress", "tag_name", "tag_value",
                   "online", "before", "sort", "order")
ADD_FIELDS = ("identity", "auth", "locked", "tags")
UPDATE_FIELDS = ("identity", "auth", "locked", "tags")
# setIdentityState's own keywords: an alias of these names cannot be set through it.
RESERVED_ALIASES = ("identity", "connector_id")


def _identity(request: web.Request) -> str:
    return request.match_info["identity"]


def _list_arguments(query: Query) -> dict[str, Any]:
    """listIdentities' arguments from the query (shared with the MuranoCLI alias)."""
    return {
        "limit": query.integer("limit", 0, MAX_LIMIT),
        "offset": query.integer("offset") or 0,
        "status": query.choice("status", STATUSES),
        "identity": query.text("identity"),
        "ipaddress": query.text("ipaddress"),
        "tag_name": query.text("tag_name"),
        "tag_value": query.text("tag_value"),
        "online": query.boolean("online"),
        "before": query.integer("before"),
        "sort": query.choice("sort", SORT_FIELDS),
        "order": query.choice("order", ORDERS),
    }


async def list_identities(request: web.Request) -> web.Response:
    args = _list_arguments(Query(request, LIST_PARAMETERS))
    return reply(service(request).listIdentities(connector_id=cid(request), **args))


async def post_identities(request: web.Request) -> web.Response:
    if bulk.is_bulk(request):
        return await bulk.import_identities(request)
    if request.headers.get("Content-Type") and request.content_type != "application/json":
        raise ServiceError(415, "unsupported_media_type",
                           "send application/json (one identity), text/csv or "
                           "multipart/form-data (bulk import)")
    Query(request, ())
    args = await body(request, ADD_FIELDS, where="identity")
    if "identity" not in args:
        raise bad("identity is required")
    svc = service(request)
    return reply(svc.addIdentity(connector_id=cid(request), **args), 201)


async def get_identity(request: web.Request) -> web.Response:
    return reply(service(request).getIdentity(identity=_identity(request),
                                              connector_id=cid(request)))


async def put_identity(request: web.Request) -> web.Response:
    args = await body(request, ADD_FIELDS, where="identity")
    same(args.pop("identity", None), _identity(request), "identity")
    record = service(request).addIdentity(identity=_identity(request),
                                          connector_id=cid(request), **args)
    return reply(record, 201)


async def update_identity(request: web.Request) -> web.Response:
    args = await body(request, UPDATE_FIELDS, where="identity")
    same(args.pop("identity", None), _identity(request), "identity")
    return reply(service(request).updateIdentity(identity=_identity(request),
                                                 connector_id=cid(request), **args))


async def remove_identity(request: web.Request) -> web.Response:
    service(request).removeIdentity(identity=_identity(request), connector_id=cid(request))
    return reply(None)


async def get_state(request: web.Request) -> web.Response:
    return reply(service(request).getIdentityState(identity=_identity(request),
                                                   connector_id=cid(request)))


async def set_state(request: web.Request) -> web.Response:
    values = await body(request)
    reserved = sorted(set(values).intersection(RESERVED_ALIASES))
    if reserved:
        raise bad(f"aliases {reserved} cannot be set through this route")
    if not values:
        raise bad("give at least one {alias: value}")
    svc, identity = service(request), _identity(request)
    svc.setIdentityState(identity=identity, connector_id=cid(request), **values)
    return reply(svc.getIdentityState(identity=identity, connector_id=cid(request)))


async def get_tags(request: web.Request) -> web.Response:
    name = Query(request, ("name",)).text("name")
    return reply(service(request).getIdentityTag(identity=_identity(request), name=name,
                                                 connector_id=cid(request)))


async def add_tags(request: web.Request) -> web.Response:
    args = await body(request, ("tags", "replace"), where="tags")
    if "tags" not in args:
        raise bad("tags is required: a list of {name, value}")
    replace = args.get("replace", False)
    if not isinstance(replace, bool):
        raise bad("replace must be a boolean")
    return reply(service(request).addIdentityTag(identity=_identity(request),
                                                 tags=args["tags"], replace=replace,
                                                 connector_id=cid(request)))


async def remove_tags(request: web.Request) -> web.Response:
    query = Query(request, ("name", "value"))
    given = await body(request, ("tags",), where="tags")
    name, value = query.text("name"), query.text("value")
    if given and (name is not None or value is not None):
        raise bad("give the tags to remove in the body or in the query, not both")
    if given:
        if "tags" not in given:
            raise bad("tags is required: a list of {name[, value]}")
        drop = given["tags"]
    elif name is not None:
        drop = [{"name": name} if value is None else {"name": name, "value": value}]
    else:
        raise bad("name the tags to remove: body {tags} or ?name=[&value=]")
    return reply(service(request).removeIdentityTag(identity=_identity(request), tags=drop,
                                                    connector_id=cid(request)))


async def list_tag_names(request: web.Request) -> web.Response:
    return reply(service(request).listTagNames(connector_id=cid(request)))


async def list_tag_values(request: web.Request) -> web.Response:
    return reply(service(request).listTagName(name=request.match_info["name"],
                                              connector_id=cid(request)))


def setup(app: web.Application) -> None:
    app.router.add_get(COLLECTION, list_identities)
    app.router.add_post(COLLECTION, post_identities)
    app.router.add_get(ITEM, get_identity)
    app.router.add_put(ITEM, put_identity)
    app.router.add_patch(ITEM, update_identity)
    app.router.add_delete(ITEM, remove_identity)
    app.router.add_get(ITEM + "/state", get_state)
    app.router.add_patch(ITEM + "/state", set_state)
    app.router.add_get(ITEM + "/tags", get_tags)
    app.router.add_post(ITEM + "/tags", add_tags)
    app.router.add_delete(ITEM + "/tags", remove_tags)
    app.router.add_get(PREFIX + "/tags", list_tag_names)
    app.router.add_get(PREFIX + "/tags/{name}", list_tag_values)
