"""REST connectors and settings over real HTTP (product.md §6; connector-spec §2, §11):
create, getGatewaySettings, deep-merge updateGatewaySettings, remove; JSON errors for wrong
methods, unknown routes and missing tokens; the MuranoCLI settings alias."""

from __future__ import annotations

import pytest

from tests.admin.conftest import AdminApi


def test_create_list_get_and_remove(admin_api: AdminApi) -> None:
    made = admin_api.request("POST", "/api/v1/connectors",
                             {"id": "second01", "name": "Second", "description": "d"})
    assert made.status == 201
    assert made.body["id"] == "second01" and made.body["default"] is False
    assert made.body["fqdn"] == "second01.m2.localhost"
    listed = admin_api.get("/api/v1/connectors").body
    assert sorted((c["id"], c["default"]) for c in listed) == sorted(
        [(admin_api.cid, True), ("second01", False)])
    settings = admin_api.get("/api/v1/connectors/second01")
    assert settings.status == 200
    assert settings.body["name"] == "Second" and settings.body["description"] == "d"
    assert settings.body["fqdn"] == "second01.m2.localhost"
    assert admin_api.request("DELETE", "/api/v1/connectors/second01").status == 200
    gone = admin_api.get("/api/v1/connectors/second01")
    assert (gone.status, gone.body["code"]) == (404, "not_found")
    assert [c["id"] for c in admin_api.get("/api/v1/connectors").body] == [admin_api.cid]


def test_create_makes_an_id(admin_api: AdminApi) -> None:
    made = admin_api.request("POST", "/api/v1/connectors")
    assert made.status == 201 and len(made.body["id"]) == 14 and made.body["id"].isalnum()


@pytest.mark.parametrize(("body", "status"), [
    ({"id": "Bad-Id"}, 400), ({"colour": "red"}, 400), ({"name": 5}, 400),
    ({"default": "yes"}, 400), ([1], 400)])
def test_create_refuses_bad_input(admin_api: AdminApi, body: object, status: int) -> None:
    answer = admin_api.request("POST", "/api/v1/connectors", body)
    assert answer.status == status
    assert answer.body["status"] == status and answer.body["code"] == "bad_request"
    assert len(admin_api.get("/api/v1/connectors").body) == 1


def test_create_existing_id_is_a_conflict(admin_api: AdminApi) -> None:
    answer = admin_api.request("POST", "/api/v1/connectors", {"id": admin_api.cid})
    assert (answer.status, answer.body["code"]) == (409, "conflict")


def test_patch_deep_merges_and_answers_the_new_settings(admin_api: AdminApi) -> None:
    before = admin_api.get(admin_api.url()).body
    answer = admin_api.request("PATCH", admin_api.url(), {
        "provisioning": {"enabled": False, "ip_whitelisting": {"allowed": ["10.0.0.0/8"]}},
        "description": "fleet"})
    assert answer.status == 200
    after = answer.body
    assert after["provisioning"]["enabled"] is False
    assert after["provisioning"]["ip_whitelisting"] == {"enabled": False,
                                                        "allowed": ["10.0.0.0/8"]}
    # untouched fields stay as they were
    assert after["provisioning"]["auth_type"] == before["provisioning"]["auth_type"]
    assert after["identity_format"] == before["identity_format"]
    assert after["description"] == "fleet"
    assert admin_api.get(admin_api.url()).body == after  # stored


@pytest.mark.parametrize("patch", [
    {"provisioning": {"auth_type": "nonsense"}}, {"colour": 1}, {"connector_id": "x"},
    {"fqdn": "elsewhere.example"}, {"protocol": {"name": "ftp"}}])
def test_patch_refused_changes_nothing(admin_api: AdminApi, patch: dict[str, object]) -> None:
    before = admin_api.get(admin_api.url()).body
    answer = admin_api.request("PATCH", admin_api.url(), patch)
    assert answer.status == 400 and answer.body["code"] == "bad_request"
    assert answer.body["message"]
    assert admin_api.get(admin_api.url()).body == before


def test_the_default_connector_cannot_be_removed(admin_api: AdminApi) -> None:
    answer = admin_api.request("DELETE", admin_api.url())
    assert (answer.status, answer.body["code"]) == (409, "conflict")
    assert admin_api.get(admin_api.url()).status == 200


def test_removing_a_connector_removes_its_identities(admin_api: AdminApi) -> None:
    assert admin_api.request("POST", "/api/v1/connectors", {"id": "other"}).status == 201
    path = "/api/v1/connectors/other/identities"
    assert admin_api.request("POST", path, {"identity": "d1", "tags": [
        {"name": "k", "value": "v"}]}).status == 201
    assert admin_api.request("DELETE", "/api/v1/connectors/other").status == 200
    assert admin_api.request("POST", "/api/v1/connectors", {"id": "other"}).status == 201
    assert admin_api.get(path).body["total"] == 0
    assert admin_api.get("/api/v1/connectors/other/tags").body == []


def test_unknown_connector_is_404_everywhere(admin_api: AdminApi) -> None:
    for method, path in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/resources"),
                         ("GET", "/identities"), ("GET", "/logs"), ("GET", "/tags")]:
        answer = admin_api.request(method, "/api/v1/connectors/nosuch" + path,
                                   {} if method == "PATCH" else None)
        assert (answer.status, answer.body["code"]) == (404, "not_found"), (method, path)


def test_wrong_method_is_a_json_405_with_allow(admin_api: AdminApi) -> None:
    answer = admin_api.request("PUT", admin_api.url(), {})
    assert answer.status == 405
    assert answer.body["status"] == 405 and answer.body["code"] == "method_not_allowed"
    assert "PUT" in answer.body["message"]
    allowed = {m.strip() for m in answer.headers["Allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed and "PUT" not in allowed


def test_unknown_route_and_missing_token(admin_api: AdminApi) -> None:
    answer = admin_api.get(admin_api.url("/nothing-here"))
    assert (answer.status, answer.body["code"]) == (404, "not_found")
    for method, path in [("GET", admin_api.url()), ("POST", "/api/v1/connectors"),
                         ("GET", admin_api.url("/identities"))]:
        answer = admin_api.request(method, path, token=None)
        assert (answer.status, answer.body["code"]) == (401, "unauthorized")
    assert len(admin_api.get("/api/v1/connectors").body) == 1


def test_murano_settings_alias(admin_api: AdminApi) -> None:
    alias = f"/api:1/service/{admin_api.cid}/device2"
    assert admin_api.get(alias).body == admin_api.get(admin_api.url()).body
    answer = admin_api.request("PATCH", alias, {"protocol": {"devmode": True}})
    assert answer.status == 200 and answer.body["protocol"]["devmode"] is True
    assert admin_api.get(admin_api.url()).body["protocol"]["devmode"] is True
    assert admin_api.get(alias, token=None).status == 401
