"""The OpenAPI document (admin/openapi.py): served behind the token, a valid OpenAPI 3.1
document, the same set of routes as the app (so neither can drift), and schemathesis run
against the live admin API: no 5xx, and statuses, content types and bodies as documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from admin.openapi import document
from tests.admin.conftest import ADMIN_TOKEN, AdminApi, running_admin

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Not API routes: the web console's page and static files.
CONSOLE = re.compile(r"^/$|^/console/")
# Generated against: everything but the streams (they never end), the content routes (raw
# bodies of any type; tests/admin/test_content.py covers them) and the Device2 RPC route
# (any operation by name: tests/admin/test_api.py).
NOT_GENERATED = r"/(logs|events)/stream$|/content|/device2/\{operation\}$"


def shape(path: str) -> str:
    """A path with every ``{parameter}`` named alike, to compare route shapes."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def app_routes(api: AdminApi) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if CONSOLE.match(path):
            continue
        routes.add((route.method.lower(), shape(path)))
    # aiohttp adds HEAD beside every GET: a duplicate, unless the document names HEAD itself
    return {(m, p) for m, p in routes if m != "head" or ("get", p) not in routes}


def document_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    found = {(method, shape(path)) for path, item in doc["paths"].items()
             for method in item if method in METHODS}
    return {(m, p) for m, p in found if m != "head" or ("get", p) not in found}


def test_served_behind_the_token(admin_api: AdminApi) -> None:
    assert admin_api.get("/api/v1/openapi.json", token=None).status == 401
    answer = admin_api.get("/api/v1/openapi.json")
    assert answer.status == 200 and answer.body["openapi"] == "3.1.0"
    assert answer.body["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert answer.body["paths"]["/api/v1/health"]["get"]["security"] == []


def test_a_valid_openapi_document(admin_api: AdminApi) -> None:
    doc = admin_api.get("/api/v1/openapi.json").body
    schemathesis.openapi.from_dict(doc).validate()  # against the OpenAPI 3.1 meta-schema
    ids = [op["operationId"] for item in doc["paths"].values()
           for method, op in item.items() if method in METHODS]
    assert len(ids) == len(set(ids))
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "default" in op["responses"], (method, path)  # the error object
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"\{([^}]+)\}", path)), (method, path)


def test_every_route_is_documented_and_every_documented_route_exists(
        admin_api: AdminApi) -> None:
    doc = admin_api.get("/api/v1/openapi.json").body
    in_app, in_doc = app_routes(admin_api), document_routes(doc)
    assert sorted(in_app - in_doc) == [], "routes missing from admin/openapi.py"
    assert sorted(in_doc - in_app) == [], "documented routes the app does not have"


def test_the_drift_check_can_fail(admin_api: AdminApi) -> None:
    doc = admin_api.get("/api/v1/openapi.json").body
    del doc["paths"]["/api/v1/connectors/{cid}/logs"]
    assert ("get", "/api/v1/connectors/{}/logs") in app_routes(admin_api) - document_routes(doc)


# -- schemathesis against the live API ------------------------------------------------------

@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminApi]:
    """One server for every generated case, with a resource, an identity and a tag to find."""
    with running_admin(Path(tmp_path_factory.mktemp("openapi"))) as api:
        assert api.request("PUT", api.url("/resources/temp"),
                           {"format": "number", "settable": True}).status == 201
        assert api.request("POST", api.url("/identities"), {
            "identity": "dev1", "tags": [{"name": "site", "value": "Lyon"}]}).status == 201
        yield api


# The document as the app serves it (test_served_is_the_built_document checks they agree),
# without the routes not generated against.
SCHEMA = schemathesis.openapi.from_dict(document()).exclude(path_regex=NOT_GENERATED)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


def test_served_is_the_built_document(admin_api: AdminApi) -> None:
    assert admin_api.get("/api/v1/openapi.json").body == document()


def _has_input(label: str) -> bool:
    raw = OPERATIONS[label].definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


# Negative cases need something to make invalid (the health check takes nothing).
CASES = [(label, mode) for label in sorted(OPERATIONS) for mode in GenerationMode
         if mode is GenerationMode.POSITIVE or _has_input(label)]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{lb}-{m.value}" for lb, m in CASES])
def test_live_api_conforms_to_the_document(live: AdminApi, label: str,
                                           mode: GenerationMode) -> None:
    """Valid (positive) and invalid (negative) requests per operation; path parameters name
    what the fixture made, so cases reach the handlers rather than a 404."""
    operation = OPERATIONS[label]
    pinned = {"cid": live.cid, "identity": "dev1", "alias": "temp", "name": "site",
              "key": "nokey"}
    path_parameters = {name: value for name, value in pinned.items()
                       if "{" + name + "}" in operation.path}

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(max_examples=12, deadline=5000, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=live.base, headers=AUTH, timeout=10, checks=[
            not_a_server_error, status_code_conformance, content_type_conformance,
            response_schema_conformance])

    run()
