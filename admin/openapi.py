"""The OpenAPI 3.1 document of the admin API, served at ``GET /api/v1/openapi.json`` (bearer
token, like every route but the health check).

Built from Python data: ``OPERATIONS`` lists every route of the admin app (product.md §6, the
MuranoCLI aliases of connector-spec §11, ``/metrics``), each with its parameters, request
body and answers; ``SCHEMAS`` holds the shapes they share. Every operation also documents a
``default`` answer, the error object ``{status, code, message}``, because any route may answer
401, 404 (unknown connector) or 400 (a bad argument). The web console's static files (``/``,
``/console/<name>``) are not API routes and are left out. ``tests/admin/test_openapi.py``
checks that this list and the app's routes are the same set, so neither can drift.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from admin.app import reply
from broker.gateway import tags
from broker.gateway.events import EVENT_TYPES
from broker.gateway.identities import MAX_LIMIT, ORDERS, SORT_FIELDS, STATUSES
from broker.gateway.logs import KINDS
from broker.gateway.resources import FORMATS
from broker.gateway.settings import AUTH_TYPES

Schema = dict[str, Any]
V1 = "/api/v1"
CONNECTOR = V1 + "/connectors/{cid}"
IDENTITY = CONNECTOR + "/identities/{identity}"
MURANO = "/api:1/service/{cid}/device2"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *,
        closed: bool = False, **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
ANY: Schema = {}
MICROS: Schema = {"type": "integer", "minimum": 0, "description": "µs since the epoch"}

TAG = obj({"name": {"type": "string", "minLength": 1, "maxLength": tags.MAX_NAME},
           "value": {"type": "string", "maxLength": tags.MAX_VALUE}}, ("name", "value"))
AUTH_IN = obj({"type": {"type": "string", "enum": [*AUTH_TYPES, "cik"]},
               "key": {"type": "string", "description": "token, password or PEM certificate"},
               "expire": {"type": "integer", "minimum": 0,
                          "description": "µs; 0 revokes (the device must provision again)"}},
              closed=True)
RESOURCE_FIELDS: dict[str, Schema] = {
    "format": {"type": "string", "enum": list(FORMATS)},
    "unit": STRING,
    "settable": BOOLEAN,
    "sync": BOOLEAN,
    "allowed": {"type": "array", "description": "allowed values; number ranges as \"9-11\""},
    "initial": {"description": "initial set value (settable resources only)"},
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"status": INTEGER, "code": STRING, "message": STRING},
                 ("status", "code", "message")),
    "Empty": obj({}, maxProperties=0),
    "Health": obj({"status": {"type": "string", "const": "ok"}}, ("status",)),
    "Connector": obj({"id": STRING, "name": STRING, "default": BOOLEAN, "created": MICROS,
                      "fqdn": STRING}, ("id", "name", "default")),
    "ConnectorCreate": obj({"id": {"type": "string", "pattern": "^[a-z0-9]{1,32}$"},
                            "name": STRING, "description": STRING, "default": BOOLEAN},
                           closed=True),
    "Settings": obj({
        "name": STRING, "description": STRING, "fqdn": STRING,
        "protocol": obj({"name": STRING, "devmode": BOOLEAN, "port": INTEGER}),
        "identity_format": obj({"type": STRING, "prefix": STRING,
                                "options": obj({"casing": STRING,
                                                "length": INTEGER})}),
        "provisioning": obj({"enabled": BOOLEAN, "auth_type": STRING,
                             "generate_identity": BOOLEAN, "presenter_identity": BOOLEAN,
                             "ip_whitelisting": obj({"enabled": BOOLEAN,
                                                     "allowed": {"type": "array",
                                                                 "items": STRING}})}),
        "resources": {"type": "object", "additionalProperties": ref("Resource")},
        "events": obj({"types": {"type": "array",
                                 "items": {"type": "string", "enum": list(EVENT_TYPES)}}}),
        "pki": nullable({"type": "object"}),
        "tags_schema": nullable({"type": "object"}),
    }, ("name", "fqdn", "protocol", "identity_format", "provisioning", "resources", "events")),
    "SettingsPatch": obj({
        name: {"description": "merged into the current value (objects key by key; a null "
                              "inside an object removes that key)"}
        for name in ("name", "description", "fqdn", "protocol", "identity_format",
                     "provisioning", "resources", "events", "pki", "tags_schema")},
        closed=True),
    "Resource": obj(RESOURCE_FIELDS, ("format", "unit", "settable", "sync", "allowed")),
    "ResourceNamed": obj({"alias": STRING, **RESOURCE_FIELDS}, ("alias", "format")),
    "ResourceDefinition": obj({"alias": {"type": "string",
                                         "description": "the path's alias, if repeated"},
                               **RESOURCE_FIELDS}, closed=True),
    "StateEntry": obj({"reported": ANY, "set": ANY, "timestamp": nullable(MICROS)}),
    "State": {"type": "object", "additionalProperties": ref("StateEntry")},
    "StateSet": {"type": "object", "minProperties": 1,
                 "description": "{alias: value} (values of settable resources)"},
    "Identity": obj({
        "identity": STRING, "auth": obj({"type": STRING}, ("type",)), "state": ref("State"),
        "locked": BOOLEAN, "reprovision": BOOLEAN, "devmode": BOOLEAN,
        "lastip": nullable(STRING), "lastseen": nullable(MICROS),
        "status": {"type": "string", "enum": ["whitelisted", "provisioned", "locked",
                                              "reprovision"]},
        "online": BOOLEAN, "tags": {"type": "array", "items": ref("Tag")},
    }, ("identity", "auth", "state", "locked", "reprovision", "devmode", "lastip", "lastseen",
        "status", "online", "tags")),
    "IdentityList": obj({"devices": {"type": "array", "items": ref("Identity")},
                         "total": INTEGER, "mayLoadMore": BOOLEAN},
                        ("devices", "total", "mayLoadMore")),
    "IdentityAdd": obj({"identity": STRING, "auth": AUTH_IN, "locked": BOOLEAN,
                        "tags": {"type": "array", "items": ref("Tag")}}, ("identity",),
                       closed=True),
    "IdentityPut": obj({"identity": {"type": "string",
                                     "description": "the path's identity, if repeated"},
                        "auth": AUTH_IN, "locked": BOOLEAN,
                        "tags": {"type": "array", "items": ref("Tag")}}, closed=True),
    "IdentityUpdate": obj({"identity": {"type": "string",
                                        "description": "the path's identity, if repeated"},
                           "locked": BOOLEAN, "auth": AUTH_IN,
                           "tags": {"type": "array", "items": ref("Tag"),
                                    "description": "replaces every tag"}}, closed=True),
    "BulkResult": obj({"added": INTEGER, "failed": {"type": "array", "items": obj(
        {"line": INTEGER, "identity": nullable(STRING), "error": STRING, "message": STRING},
        ("line", "identity", "error", "message"))}}, ("added", "failed")),
    "Tag": TAG,
    "TagList": {"type": "array", "items": ref("Tag")},
    "TagsAdd": obj({"tags": {"type": "array", "items": ref("Tag")}, "replace": BOOLEAN},
                   ("tags",), closed=True),
    "TagsRemove": obj({"tags": {"type": "array", "items": obj(
        {"name": STRING, "value": STRING}, ("name",))}}, ("tags",), closed=True),
    "TagValues": {"type": "array", "items": obj({"value": STRING, "count": INTEGER},
                                                ("value", "count"))},
    "LogEntry": obj({"timestamp_us": MICROS, "identity": nullable(STRING),
                     "ip": nullable(STRING), "protocol": nullable(STRING), "type": STRING,
                     "connection_id": nullable(STRING), "detail": ANY},
                    ("timestamp_us", "type")),
    "AppKey": obj({"key": STRING, "name": STRING, "created": MICROS}, ("key",)),
    "AppKeyCreate": obj({"name": {"type": "string", "maxLength": 256}}),
    "AppKeyCreated": obj({"key": STRING, "secret": STRING}, ("key", "secret")),
    "Content": obj({"id": STRING, "type": STRING, "length": INTEGER, "updated": MICROS,
                    "meta": STRING, "sha256": STRING}, ("id", "type", "length")),
}


def _path(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    out: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        out["description"] = description
    return out


# Path parts: one dot or two would be a relative path segment, never an identity or alias.
SEGMENT = "^(?!\\.\\.?$)[^/]+$"
P_CID = _path("cid", {"type": "string", "pattern": "^[a-z0-9]{1,32}$"}, "connector id")
P_IDENTITY = _path("identity", {"type": "string", "pattern": SEGMENT, "maxLength": 256},
                   "device identity")
P_ALIAS = _path("alias", {"type": "string", "pattern": "^(?!\\.\\.?$)[^./$]+$",
                          "maxLength": 128}, "resource alias")
P_TAG = _path("name", {"type": "string", "pattern": SEGMENT, "maxLength": 128}, "tag name")
P_KEY = _path("key", {"type": "string", "pattern": SEGMENT}, "application key")
P_CONTENT = _path("id", {"type": "string", "pattern": SEGMENT, "maxLength": 255}, "content id")
P_OPERATION = _path("operation", {"type": "string", "pattern": "^[A-Za-z]+$"},
                    "a Device2 operation name (connector-spec §11)")

LIST_QUERY = [
    _query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
           "page size (default 100)"),
    _query("offset", {"type": "integer", "minimum": 0}),
    _query("status", {"type": "string", "enum": list(STATUSES)}),
    _query("identity", STRING, "glob on the identity (*, ?, [..])"),
    _query("ipaddress", STRING, "glob on the last IP address"),
    _query("tag_name", STRING),
    _query("tag_value", STRING, "needs tag_name"),
    _query("online", BOOLEAN),
    _query("before", {"type": "integer", "minimum": 0}, "created before this µs time"),
    _query("sort", {"type": "string", "enum": list(SORT_FIELDS)}, "default identity"),
    _query("order", {"type": "string", "enum": list(ORDERS)}, "default asc"),
]
EXPIRE_QUERY = _query("expire", {"type": "integer", "minimum": 1},
                      "µs: rows not provisioned by then are deleted")


def _json_body(schema: Schema, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BULK_BODY: Schema = {"required": True, "content": {
    "application/json": {"schema": ref("IdentityAdd")},
    "text/csv": {"schema": {"type": "string", "description": (
        "header ID [, SSL Client Certificate] [, tag:<name> ...]; tag cells split by |")}},
    "multipart/form-data": {"schema": obj(
        {"identities": {"type": "string", "format": "binary", "description": "the CSV"},
         "expire": {"type": "integer", "minimum": 1}}, ("identities",))},
}}
BULK_ANSWERS = {"200": _json(ref("BulkResult"), "bulk import (CSV or form body)"),
                "201": _json(ref("Identity"), "identity added (JSON body)")}


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    answers: dict[str, Schema]
    parameters: list[Schema] = field(default_factory=list)
    body: Schema | None = None
    public: bool = False

    def document(self) -> Schema:
        op: Schema = {"operationId": self.operation_id, "tags": [self.tag],
                      "summary": self.summary,
                      "responses": {**self.answers, "default": {
                          "description": "error", "content": {
                              "application/json": {"schema": ref("Error")}}}}}
        path_parameters = [p for p in (P_CID, P_IDENTITY, P_ALIAS, P_TAG, P_KEY, P_CONTENT,
                                       P_OPERATION) if "{" + p["name"] + "}" in self.path]
        if path_parameters or self.parameters:
            op["parameters"] = copy.deepcopy(path_parameters + self.parameters)
        if self.body is not None:
            op["requestBody"] = copy.deepcopy(self.body)
        if self.public:
            op["security"] = []
        return op


def _identity_ops(base: str, prefix: str, tag: str) -> list[Operation]:
    """getIdentity … setIdentityState under ``base`` (``/api/v1`` and the MuranoCLI alias);
    operation ids get ``prefix`` (``murano`` + ``GetIdentity``)."""

    def named(name: str) -> str:
        return prefix + name[0].upper() + name[1:] if prefix else name

    return [
        Operation("get", base, named("getIdentity"), tag, "getIdentity",
                  {"200": _json(ref("Identity"))}),
        Operation("put", base, named("putIdentity"), tag,
                  "addIdentity (409 if it exists)", {"201": _json(ref("Identity"), "added")},
                  body=_json_body(ref("IdentityPut"), required=False)),
        Operation("patch", base, named("updateIdentity"), tag,
                  "updateIdentity: lock/unlock, credentials, revoke (auth.expire 0), tags",
                  {"200": _json(ref("Identity"))},
                  body=_json_body(ref("IdentityUpdate"), required=False)),
        Operation("delete", base, named("removeIdentity"), tag, "removeIdentity",
                  {"200": _json(ref("Empty"))}),
        Operation("get", base + "/state", named("getIdentityState"), tag,
                  "getIdentityState", {"200": _json(ref("State"))}),
        Operation("patch", base + "/state", named("setIdentityState"), tag,
                  "setIdentityState; answers the new state", {"200": _json(ref("State"))},
                  body=_json_body(ref("StateSet"))),
    ]


OPERATIONS: list[Operation] = [
    Operation("get", V1 + "/health", "health", "service", "200 once every listener is up",
              {"200": _json(ref("Health"))}, public=True),
    Operation("get", V1 + "/openapi.json", "openapi", "service", "this document",
              {"200": _json({"type": "object"})}),
    Operation("get", "/metrics", "metrics", "service", "Prometheus text metrics",
              {"200": {"description": "metrics", "content": {
                  "text/plain": {"schema": STRING},
                  "application/openmetrics-text": {"schema": STRING}}}}),
    # connectors and settings
    Operation("get", V1 + "/connectors", "listConnectors", "connectors", "every connector",
              {"200": _json({"type": "array", "items": ref("Connector")})}),
    Operation("post", V1 + "/connectors", "createConnector", "connectors",
              "make a connector (id made if not given)", {"201": _json(ref("Connector"))},
              body=_json_body(ref("ConnectorCreate"), required=False)),
    Operation("get", CONNECTOR, "getGatewaySettings", "connectors", "getGatewaySettings",
              {"200": _json(ref("Settings"))}),
    Operation("patch", CONNECTOR, "updateGatewaySettings", "connectors",
              "updateGatewaySettings (deep merge); answers the new settings",
              {"200": _json(ref("Settings"))}, body=_json_body(ref("SettingsPatch"))),
    Operation("delete", CONNECTOR, "removeConnector", "connectors",
              "remove a connector and all it holds (not the default one: 409)",
              {"200": _json(ref("Empty"))}),
    # resources
    Operation("get", CONNECTOR + "/resources", "listGatewayResources", "resources",
              "{alias: definition}", {"200": _json({"type": "object",
                                                    "additionalProperties": ref("Resource")})}),
    Operation("get", CONNECTOR + "/resources/{alias}", "getGatewayResource", "resources",
              "getGatewayResource", {"200": _json(ref("ResourceNamed"))}),
    Operation("put", CONNECTOR + "/resources/{alias}", "addGatewayResource", "resources",
              "addGatewayResource (409 if it exists)", {"201": _json(ref("ResourceNamed"))},
              body=_json_body(ref("ResourceDefinition"), required=False)),
    Operation("patch", CONNECTOR + "/resources/{alias}", "updateGatewayResource", "resources",
              "updateGatewayResource", {"200": _json(ref("ResourceNamed"))},
              body=_json_body(ref("ResourceDefinition"), required=False)),
    Operation("delete", CONNECTOR + "/resources/{alias}", "removeGatewayResource",
              "resources", "removeGatewayResource (drops its values)",
              {"200": _json(ref("Empty"))}),
    # identities
    Operation("get", CONNECTOR + "/identities", "listIdentities", "identities",
              "listIdentities", {"200": _json(ref("IdentityList"))}, LIST_QUERY),
    Operation("post", CONNECTOR + "/identities", "addIdentities", "identities",
              "addIdentity (JSON) or streamed bulk import (text/csv, multipart)",
              BULK_ANSWERS, [EXPIRE_QUERY], BULK_BODY),
    *_identity_ops(IDENTITY, "", "identities"),
    Operation("get", IDENTITY + "/tags", "getIdentityTag", "tags", "the identity's tags",
              {"200": _json(ref("TagList"))}, [_query("name", STRING, "only this name")]),
    Operation("post", IDENTITY + "/tags", "addIdentityTag", "tags",
              "add tags (replace: the given names' values replace the old ones)",
              {"200": _json(ref("TagList"))}, body=_json_body(ref("TagsAdd"))),
    Operation("delete", IDENTITY + "/tags", "removeIdentityTag", "tags",
              "remove tags: body {tags} or ?name=[&value=]; answers the tags left",
              {"200": _json(ref("TagList"))},
              [_query("name", STRING), _query("value", STRING, "needs name")],
              _json_body(ref("TagsRemove"), required=False)),
    Operation("get", CONNECTOR + "/tags", "listTagNames", "tags", "tag names in use",
              {"200": _json({"type": "array", "items": STRING})}),
    Operation("get", CONNECTOR + "/tags/{name}", "listTagName", "tags",
              "values of one tag name with their counts", {"200": _json(ref("TagValues"))}),
    # content (connector-spec §7)
    Operation("get", CONNECTOR + "/content", "contentList", "content", "content items",
              {"200": _json({"type": "array", "items": ref("Content")})}),
    Operation("put", CONNECTOR + "/content/{id}", "contentUpload", "content",
              "upload the raw body (Content-Type = its type, X-Content-Meta = meta)",
              {"200": _json(ref("Content"), "replaced"), "201": _json(ref("Content"), "made")},
              [{"name": "X-Content-Meta", "in": "header", "required": False,
                "schema": STRING}],
              {"required": True, "content": {"*/*": {"schema": {"type": "string",
                                                                "format": "binary"}}}}),
    Operation("get", CONNECTOR + "/content/{id}", "contentDownload", "content",
              "download (Range supported)", {
                  "200": {"description": "the body", "content": {"*/*": {"schema": {
                      "type": "string", "format": "binary"}}}},
                  "206": {"description": "a byte range", "content": {"*/*": {"schema": {
                      "type": "string", "format": "binary"}}}}},
              [{"name": "Range", "in": "header", "required": False, "schema": STRING}]),
    Operation("head", CONNECTOR + "/content/{id}", "contentInfo", "content",
              "info in headers", {"200": {"description": "headers only"}}),
    Operation("delete", CONNECTOR + "/content/{id}", "contentDelete", "content", "delete",
              {"200": _json(ref("Empty"))}),
    # application keys
    Operation("get", CONNECTOR + "/apps", "listAppKeys", "apps", "application keys",
              {"200": _json({"type": "array", "items": ref("AppKey")})}),
    Operation("post", CONNECTOR + "/apps", "createAppKey", "apps",
              "a new key; the secret is shown once", {"200": _json(ref("AppKeyCreated"))},
              body=_json_body(ref("AppKeyCreate"), required=False)),
    Operation("delete", CONNECTOR + "/apps/{key}", "deleteAppKey", "apps", "remove a key",
              {"200": _json(ref("Empty"))}),
    # logs
    Operation("get", CONNECTOR + "/logs", "getLogs", "logs", "the log ring, oldest first",
              {"200": _json({"type": "array", "items": ref("LogEntry")})}, [
                  _query("type", {"type": "string", "enum": list(KINDS)}, "default event"),
                  _query("identity", STRING), _query("ip", STRING),
                  _query("since", {"type": "integer", "minimum": 0}, "µs"),
                  _query("limit", {"type": "integer", "minimum": 1, "maximum": 100_000},
                         "the newest n")]),
    Operation("get", CONNECTOR + "/logs/stream", "streamLogs", "logs",
              "live log entries (Server-Sent Events)",
              {"200": {"description": "an event stream", "content": {
                  "text/event-stream": {"schema": STRING}}}}, [
                  _query("type", {"type": "string", "enum": list(KINDS)}),
                  _query("identity", STRING), _query("ip", STRING),
                  _query("backlog", {"type": "integer", "minimum": 0})]),
    Operation("get", CONNECTOR + "/events/stream", "streamEvents", "logs",
              "live §10 events (Server-Sent Events)",
              {"200": {"description": "an event stream", "content": {
                  "text/event-stream": {"schema": STRING}}}}, [
                  _query("identity", STRING),
                  _query("type", STRING, "comma-separated event types")]),
    Operation("get", CONNECTOR + "/events", "websocketEvents", "logs",
              "live §10 events over a WebSocket (connector-spec §10): one JSON text message "
              "per event; send an Upgrade request",
              {"101": {"description": "switching to the WebSocket protocol"}}, [
                  _query("identity", STRING),
                  _query("type", STRING, "comma-separated event types")]),
    # Device2 RPC
    Operation("post", CONNECTOR + "/device2/{operation}", "device2", "device2",
              "any Device2 operation with a JSON object of its arguments",
              {"200": _json(ANY, "the operation's result ({} when it has none)")},
              body=_json_body({"type": "object"}, required=False)),
    # MuranoCLI aliases (connector-spec §11)
    Operation("get", MURANO, "muranoGetGatewaySettings", "murano", "getGatewaySettings",
              {"200": _json(ref("Settings"))}),
    Operation("patch", MURANO, "muranoUpdateGatewaySettings", "murano",
              "updateGatewaySettings", {"200": _json(ref("Settings"))},
              body=_json_body(ref("SettingsPatch"))),
    Operation("get", MURANO + "/identity/", "muranoListIdentities", "murano",
              "listIdentities", {"200": _json(ref("IdentityList"))}, LIST_QUERY),
    *_identity_ops(MURANO + "/identity/{identity}", "murano", "murano"),
    Operation("post", MURANO + "/identities", "muranoAddIdentities", "murano",
              "addIdentities: multipart identities=<csv>, expire", BULK_ANSWERS,
              [EXPIRE_QUERY], BULK_BODY),
]


def document() -> Schema:
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = op.document()
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fleetgate admin API", "version": "1",
                 "description": "Connectors, resources, identities, state, tags, content, "
                                "application keys and logs of a Fleetgate IoT connector "
                                "(docs/admin-api.md)."},
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "the token of <data>/admin.token"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    return reply(request.app[DOCUMENT_KEY])


DOCUMENT_KEY: web.AppKey[Schema] = web.AppKey("openapi_document", dict)


def setup(app: web.Application) -> None:
    app[DOCUMENT_KEY] = document()
    app.router.add_get(V1 + "/openapi.json", openapi_json)
