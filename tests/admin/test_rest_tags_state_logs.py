"""REST state, tags and the log ring over real HTTP (connector-spec §4.2, §8, §9, §11):
getIdentityState/setIdentityState (with a set value reaching a connected MQTT device), tags
add/replace/remove (body or query) with the tag index kept in step, tag names and values, and
``GET …/logs`` filters on entries made by real MQTT traffic."""

from __future__ import annotations

from typing import Any

import pytest

from broker.mqtt.packets import Pingreq, Pingresp, Publish
from tests.admin.conftest import AdminApi
from tests.rawclient import RawClient, provision_mqtt

SITE_LYON = {"name": "site", "value": "Lyon"}
SITE_PARIS = {"name": "site", "value": "Paris"}
MODEL = {"name": "model", "value": "m1"}


@pytest.fixture
def device(admin_api: AdminApi) -> AdminApi:
    """Resources ``level`` (settable number), ``out`` (settable string) and ``temp`` (not
    settable); identity ``d1``."""
    for alias, definition in [("level", {"format": "number", "settable": True}),
                              ("out", {"format": "string", "settable": True}),
                              ("temp", {"format": "number"})]:
        assert admin_api.request("PUT", admin_api.url(f"/resources/{alias}"),
                                 definition).status == 201
    assert admin_api.request("POST", admin_api.url("/identities"),
                             {"identity": "d1"}).status == 201
    return admin_api


def provision(api: AdminApi, identity: str) -> str:
    return provision_mqtt("127.0.0.1", api.broker.port, identity)


# -- state ------------------------------------------------------------------------------------

def test_state_set_and_get(device: AdminApi) -> None:
    assert device.get(device.url("/identities/d1/state")).body == {}
    answer = device.request("PATCH", device.url("/identities/d1/state"),
                            {"level": 7, "out": "on"})
    assert answer.status == 200
    assert answer.body["level"]["set"] == 7 and answer.body["level"]["reported"] is None
    assert answer.body["out"]["set"] == "on" and answer.body["out"]["timestamp"] > 0
    assert device.get(device.url("/identities/d1/state")).body == answer.body
    assert device.get(device.url("/identities/d1")).body["state"] == answer.body


@pytest.mark.parametrize(("values", "status", "code"), [
    ({"temp": 1}, 400, "not_settable"),
    ({"level": "high"}, 400, "invalid_value"),
    ({"level": 1, "temp": 2}, 400, "not_settable"),
    ({}, 400, "bad_request"),
    ({"identity": "x"}, 400, "bad_request"),
    ({"connector_id": "x"}, 400, "bad_request"),
])
def test_state_refusals_change_nothing(device: AdminApi, values: dict[str, Any], status: int,
                                       code: str) -> None:
    answer = device.request("PATCH", device.url("/identities/d1/state"), values)
    assert (answer.status, answer.body["code"]) == (status, code), answer.body
    assert device.get(device.url("/identities/d1/state")).body == {}


def test_state_of_unknown_identity(device: AdminApi) -> None:
    for method, body in (("GET", None), ("PATCH", {"level": 1})):
        answer = device.request(method, device.url("/identities/nobody/state"), body)
        assert (answer.status, answer.body["code"]) == (404, "not_found")


def test_a_set_value_reaches_the_connected_device(device: AdminApi) -> None:
    token = provision(device, "d2")
    with RawClient("127.0.0.1", device.broker.port) as d:
        d.connect(username="", password=token.encode())
        d.send(Pingreq())
        assert d.recv() == Pingresp()
        answer = device.request("PATCH", device.url("/identities/d2/state"), {"out": "go"})
        assert answer.status == 200
        pushed = d.recv()
        assert isinstance(pushed, Publish) and pushed.topic.startswith("$resource/out")
        assert pushed.payload == b"go"


# -- tags -------------------------------------------------------------------------------------

def tag_count(api: AdminApi, name: str, value: str | None = None) -> int:
    query = f"&tag_name={name}" + (f"&tag_value={value}" if value is not None else "")
    return int(api.get(api.url(f"/identities?limit=0{query}")).body["total"])


def test_tags_add_replace_get(device: AdminApi) -> None:
    path = device.url("/identities/d1/tags")
    added = device.request("POST", path, {"tags": [SITE_LYON, MODEL]})
    assert added.status == 200 and added.body == [SITE_LYON, MODEL]
    assert device.request("POST", path, {"tags": [SITE_PARIS]}).body == [
        SITE_LYON, MODEL, SITE_PARIS]
    replaced = device.request("POST", path, {"tags": [SITE_PARIS], "replace": True})
    assert replaced.body == [MODEL, SITE_PARIS]
    assert device.get(path).body == [MODEL, SITE_PARIS]
    assert device.get(path + "?name=site").body == [SITE_PARIS]
    assert tag_count(device, "site", "Lyon") == 0 and tag_count(device, "site", "Paris") == 1
    assert sorted(device.get(device.url("/tags")).body) == ["model", "site"]
    assert device.get(device.url("/tags/site")).body == [{"value": "Paris", "count": 1}]


def test_tags_remove_by_body_and_by_query(device: AdminApi) -> None:
    path = device.url("/identities/d1/tags")
    device.request("POST", path, {"tags": [SITE_LYON, SITE_PARIS, MODEL]})
    assert device.request("DELETE", path, {"tags": [SITE_LYON]}).body == [SITE_PARIS, MODEL]
    assert device.request("DELETE", path + "?name=model&value=m1").body == [SITE_PARIS]
    device.request("POST", path, {"tags": [SITE_LYON]})
    assert device.request("DELETE", path + "?name=site").body == []  # every value
    assert tag_count(device, "site") == 0 and tag_count(device, "model") == 0
    assert device.get(device.url("/tags")).body == []


@pytest.mark.parametrize(("method", "query", "body"), [
    ("POST", "", {}),
    ("POST", "", {"tags": [SITE_LYON], "replace": "yes"}),
    ("POST", "", {"tags": [{"name": "site"}]}),
    ("POST", "", {"tags": "site=Lyon"}),
    ("POST", "", {"tags": [SITE_LYON], "colour": 1}),
    ("DELETE", "", None),
    ("DELETE", "?name=site", {"tags": [SITE_LYON]}),
    ("DELETE", "?value=Lyon", None),
    ("DELETE", "?colour=red", None),
    ("GET", "?colour=red", None),
])
def test_tag_refusals_change_nothing(device: AdminApi, method: str, query: str,
                                     body: object) -> None:
    path = device.url("/identities/d1/tags")
    device.request("POST", path, {"tags": [SITE_LYON]})
    answer = device.request(method, path + query, body)
    assert (answer.status, answer.body["code"]) == (400, "bad_request"), answer.body
    assert device.get(path).body == [SITE_LYON]


def test_tags_of_unknown_identity(device: AdminApi) -> None:
    path = device.url("/identities/nobody/tags")
    for method, body in (("GET", None), ("POST", {"tags": [SITE_LYON]}),
                         ("DELETE", {"tags": [SITE_LYON]})):
        answer = device.request(method, path, body)
        assert (answer.status, answer.body["code"]) == (404, "not_found")
    assert tag_count(device, "site") == 0


# -- logs -------------------------------------------------------------------------------------

def test_logs_from_real_traffic(device: AdminApi) -> None:
    provision(device, "d3")
    with RawClient("127.0.0.1", device.broker.port) as c:  # a wrong token: a debug entry
        c.connect(username="", password=b"x" * 40, expect_rc=4)
        c.expect_closed()
    assert device.request("DELETE", device.url("/identities/d1")).status == 200

    events = device.get(device.url("/logs")).body
    kinds = [(e["type"], e["identity"]) for e in events]
    assert ("provision", "d3") in kinds and ("deleted", "d1") in kinds
    assert all(set(e) >= {"timestamp_us", "identity", "ip", "protocol", "type",
                          "connection_id", "detail"} for e in events)
    assert [e["type"] for e in device.get(device.url("/logs?identity=d3")).body] == [
        "provision"]
    debug = device.get(device.url("/logs?type=debug&ip=127.0.0.1")).body
    assert "bad_credentials" in [e["type"] for e in debug]
    assert all(e["ip"] == "127.0.0.1" for e in debug)
    assert device.get(device.url("/logs?type=debug&ip=10.9.9.9")).body == []
    assert device.get(device.url("/logs?limit=1")).body == events[-1:]
    deleted = next(e for e in events if e["type"] == "deleted")
    since = device.get(device.url(f"/logs?since={deleted['timestamp_us']}")).body
    assert deleted in since and all(e["type"] != "provision" for e in since)


@pytest.mark.parametrize(("query", "words"), [
    ("type=trace", "type must be one of"), ("since=yesterday", "since must be an integer"),
    ("limit=0", "limit must be an integer 1..100000"), ("colour=red", "unknown query")])
def test_logs_bad_query(admin_api: AdminApi, query: str, words: str) -> None:
    answer = admin_api.get(admin_api.url(f"/logs?{query}"))
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert words in answer.body["message"]


def test_a_tag_too_long_for_the_index_is_refused(device: AdminApi) -> None:
    path = device.url("/identities/d1/tags")
    """LMDB keys hold 511 bytes: a tag too long for the index is refused before any write,
    whether long in characters or in UTF-8 bytes, at the largest identity and connector id."""
    answer = device.request("POST", path, {"tags": [{"name": "n", "value": "v" * 600}]})
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    answer = device.request("POST", path, {"tags": [{"name": "n", "value": "é" * 76}]})
    assert answer.status == 400  # 152 bytes
    answer = device.request("POST", path, {"tags": [{"name": "n" * 65, "value": "v"}]})
    assert answer.status == 400
    answer = device.request("POST", path, {"tags": [{"name": "n", "value": "\ud800"}]})
    assert answer.status == 400
    assert device.get(path).body == []
    # The longest name and value, on the longest identity of the longest connector id.
    cid = "c" * 32
    assert device.request("POST", "/api/v1/connectors", {"id": cid}).status == 201
    identity = "i" * 256
    base = f"/api/v1/connectors/{cid}/identities"
    assert device.request("POST", base, {"identity": identity}).status in (200, 201)
    tag = {"name": "n" * 64, "value": "é" * 75}
    answer = device.request("POST", f"{base}/{identity}/tags", {"tags": [tag]})
    assert answer.status == 200, answer.body
    assert device.get(f"{base}/{identity}/tags").body == [tag]
