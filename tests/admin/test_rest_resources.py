"""REST resource definitions over real HTTP (connector-spec §4.1; §11 add/get/update/remove
GatewayResource): PUT adds (409 if it exists), PATCH changes, DELETE drops the values."""

from __future__ import annotations

import pytest

from tests.admin.conftest import AdminApi


def test_put_get_list(admin_api: AdminApi) -> None:
    made = admin_api.request("PUT", admin_api.url("/resources/temp"),
                             {"format": "number", "unit": "°C"})
    assert made.status == 201
    assert made.body == {"alias": "temp", "format": "number", "unit": "°C", "settable": False,
                         "sync": True, "allowed": [], "initial": None}
    assert admin_api.get(admin_api.url("/resources/temp")).body == made.body
    listed = admin_api.get(admin_api.url("/resources")).body
    assert listed == {"temp": {k: v for k, v in made.body.items() if k != "alias"}}
    settings = admin_api.get(admin_api.url()).body
    assert settings["resources"] == listed


def test_put_existing_is_a_conflict_and_changes_nothing(admin_api: AdminApi) -> None:
    assert admin_api.request("PUT", admin_api.url("/resources/temp"),
                             {"format": "number"}).status == 201
    answer = admin_api.request("PUT", admin_api.url("/resources/temp"), {"format": "string"})
    assert (answer.status, answer.body["code"]) == (409, "conflict")
    assert admin_api.get(admin_api.url("/resources/temp")).body["format"] == "number"


def test_patch_changes_given_fields(admin_api: AdminApi) -> None:
    admin_api.request("PUT", admin_api.url("/resources/mode"), {"format": "string"})
    answer = admin_api.request("PATCH", admin_api.url("/resources/mode"),
                               {"settable": True, "allowed": ["a", "b"], "initial": "a"})
    assert answer.status == 200
    assert answer.body["settable"] is True and answer.body["allowed"] == ["a", "b"]
    assert answer.body["format"] == "string" and answer.body["initial"] == "a"
    # a new identity starts from the initial value
    admin_api.request("POST", admin_api.url("/identities"), {"identity": "d1"})
    state = admin_api.get(admin_api.url("/identities/d1/state")).body
    assert state["mode"]["set"] == "a"


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("PUT", "/resources/a.b", {"format": "string"}, 400, "bad_request"),
    ("PUT", "/resources/x", {"format": "colour"}, 400, "bad_request"),
    ("PUT", "/resources/x", {"format": "string", "colour": 1}, 400, "bad_request"),
    ("PUT", "/resources/x", {"alias": "y", "format": "string"}, 400, "bad_request"),
    ("PUT", "/resources/x", {"format": "string", "initial": "v"}, 400, "bad_request"),
    ("PATCH", "/resources/nosuch", {"unit": "m"}, 404, "not_found"),
    ("DELETE", "/resources/nosuch", None, 404, "not_found"),
    ("GET", "/resources/nosuch", None, 404, "not_found"),
])
def test_refusals(admin_api: AdminApi, method: str, path: str, body: object, status: int,
                  code: str) -> None:
    answer = admin_api.request(method, admin_api.url(path), body)
    assert (answer.status, answer.body["status"], answer.body["code"]) == (status, status, code)
    assert answer.body["message"]
    assert admin_api.get(admin_api.url("/resources")).body == {}


def test_bad_json_body(admin_api: AdminApi) -> None:
    answer = admin_api.request("PUT", admin_api.url("/resources/x"), raw=b"{nope",
                               content_type="application/json")
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    answer = admin_api.request("PATCH", admin_api.url("/resources/x"), raw=b"[]",
                               content_type="application/json")
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    answer = admin_api.request("PUT", admin_api.url("/resources/x"), raw=b'{"\xec[}',
                               content_type="application/json")  # not UTF-8: 400, not 500
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert admin_api.get(admin_api.url("/resources")).body == {}


def test_delete_drops_the_values(admin_api: AdminApi) -> None:
    admin_api.request("PUT", admin_api.url("/resources/level"),
                      {"format": "number", "settable": True})
    admin_api.request("PUT", admin_api.url("/resources/keep"),
                      {"format": "string", "settable": True})
    admin_api.request("POST", admin_api.url("/identities"), {"identity": "d1"})
    state = admin_api.request("PATCH", admin_api.url("/identities/d1/state"),
                              {"level": 3, "keep": "x"}).body
    assert set(state) == {"level", "keep"}
    assert admin_api.request("DELETE", admin_api.url("/resources/level")).body == {}
    assert admin_api.get(admin_api.url("/resources/level")).status == 404
    assert set(admin_api.get(admin_api.url("/identities/d1/state")).body) == {"keep"}
    # defined again: the old value does not come back
    admin_api.request("PUT", admin_api.url("/resources/level"),
                      {"format": "number", "settable": True})
    assert "level" not in admin_api.get(admin_api.url("/identities/d1/state")).body
