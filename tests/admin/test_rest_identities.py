"""REST identities over real HTTP (connector-spec §3, §3.5, §11): add one (JSON), the streamed
CSV bulk import (10k rows with bad ones, a body beyond client_max_size, batches committed while
the body still arrives, a cut import), get/put/patch/delete, listing filters and sorting
(``online`` with a real MQTT device), and the MuranoCLI aliases."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.mqtt.packets import Pingreq, Pingresp
from tests.admin.conftest import ADMIN_TOKEN, AdminApi
from tests.rawclient import RawClient, provision_mqtt


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def ids(answer: Any) -> list[str]:
    return [d["identity"] for d in answer.body["devices"]]


def count(admin_api: AdminApi, query: str = "") -> int:
    answer = admin_api.get(admin_api.url(f"/identities?limit=0{query}"))
    assert answer.status == 200, answer.body
    return int(answer.body["total"])


# -- one identity ---------------------------------------------------------------------------

def test_add_get_update_remove(admin_api: AdminApi) -> None:
    made = admin_api.request("POST", admin_api.url("/identities"), {
        "identity": "dev1", "tags": [{"name": "site", "value": "Lyon"}]})
    assert made.status == 201
    assert made.body["identity"] == "dev1" and made.body["status"] == "whitelisted"
    assert made.body["tags"] == [{"name": "site", "value": "Lyon"}]
    assert "secret" not in made.body["auth"] and "key" not in made.body["auth"]
    assert admin_api.get(admin_api.url("/identities/dev1")).body == made.body

    locked = admin_api.request("PATCH", admin_api.url("/identities/dev1"), {"locked": True})
    assert locked.status == 200 and locked.body["status"] == "locked"
    keyed = admin_api.request("PATCH", admin_api.url("/identities/dev1"),
                              {"locked": False, "auth": {"key": "k" * 40}})
    assert keyed.body["status"] == "provisioned"
    revoked = admin_api.request("PATCH", admin_api.url("/identities/dev1"),
                                {"auth": {"expire": 0}})
    assert revoked.body["status"] == "reprovision" and revoked.body["reprovision"] is True
    retagged = admin_api.request("PATCH", admin_api.url("/identities/dev1"),
                                 {"tags": [{"name": "site", "value": "Paris"}]})
    assert retagged.body["tags"] == [{"name": "site", "value": "Paris"}]
    assert count(admin_api, "&tag_name=site&tag_value=Lyon") == 0
    assert count(admin_api, "&tag_name=site&tag_value=Paris") == 1

    assert admin_api.request("DELETE", admin_api.url("/identities/dev1")).body == {}
    for method in ("GET", "PATCH", "DELETE"):
        answer = admin_api.request(method, admin_api.url("/identities/dev1"),
                                   {} if method == "PATCH" else None)
        assert (answer.status, answer.body["code"]) == (404, "not_found")
    assert count(admin_api, "&tag_name=site") == 0


def test_put_adds_once(admin_api: AdminApi) -> None:
    made = admin_api.request("PUT", admin_api.url("/identities/dev2"),
                             {"auth": {"key": "t" * 40}})
    assert made.status == 201 and made.body["status"] == "provisioned"
    again = admin_api.request("PUT", admin_api.url("/identities/dev2"))
    assert (again.status, again.body["code"]) == (409, "conflict")
    other = admin_api.request("PUT", admin_api.url("/identities/dev3"), {"identity": "dev4"})
    assert other.status == 400 and "differs" in other.body["message"]
    assert count(admin_api) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"identity": "a/b"}, 400, "invalid_identity"),
    ({}, 400, "bad_request"),
    ({"identity": "x", "colour": "red"}, 400, "bad_request"),
    ({"identity": "x", "locked": "yes"}, 400, "bad_request"),
    ({"identity": "x", "tags": [{"name": ""}]}, 400, "bad_request"),
    ({"identity": "x", "auth": {"type": "hash"}}, 400, "unsupported_auth_type"),
])
def test_add_refusals_change_nothing(admin_api: AdminApi, body: dict[str, Any], status: int,
                                     code: str) -> None:
    answer = admin_api.request("POST", admin_api.url("/identities"), body)
    assert (answer.status, answer.body["code"]) == (status, code), answer.body
    assert count(admin_api) == 0
    assert admin_api.get(admin_api.url("/tags")).body == []


def test_add_twice_is_a_conflict(admin_api: AdminApi) -> None:
    assert admin_api.request("POST", admin_api.url("/identities"),
                             {"identity": "d"}).status == 201
    answer = admin_api.request("POST", admin_api.url("/identities"), {"identity": "d"})
    assert (answer.status, answer.body["code"]) == (409, "conflict")


def test_unsupported_body_type(admin_api: AdminApi) -> None:
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=b"<x/>",
                               content_type="application/xml")
    assert (answer.status, answer.body["code"]) == (415, "unsupported_media_type")


# -- listing ----------------------------------------------------------------------------------

@pytest.fixture
def fleet(admin_api: AdminApi) -> AdminApi:
    """dev00..dev09: dev03 locked, dev05 provisioned, even ones tagged site=even."""
    for i in range(10):
        tags = [{"name": "site", "value": "even"}] if i % 2 == 0 else []
        body: dict[str, Any] = {"identity": f"dev{i:02d}", "tags": tags}
        if i == 3:
            body["locked"] = True
        if i == 5:
            body["auth"] = {"key": "p" * 40}
        assert admin_api.request("POST", admin_api.url("/identities"), body).status == 201
    return admin_api


def test_list_paging(fleet: AdminApi) -> None:
    page = fleet.get(fleet.url("/identities?limit=4&offset=4"))
    assert ids(page) == ["dev04", "dev05", "dev06", "dev07"]
    assert page.body["total"] == 10 and page.body["mayLoadMore"] is True
    last = fleet.get(fleet.url("/identities?limit=4&offset=8"))
    assert ids(last) == ["dev08", "dev09"] and last.body["mayLoadMore"] is False


def test_list_filters(fleet: AdminApi) -> None:
    assert ids(fleet.get(fleet.url("/identities?status=locked"))) == ["dev03"]
    assert ids(fleet.get(fleet.url("/identities?status=provisioned"))) == ["dev05"]
    assert ids(fleet.get(fleet.url("/identities?identity=dev0[12]"))) == ["dev01", "dev02"]
    even = fleet.get(fleet.url("/identities?tag_name=site&tag_value=even&limit=2"))
    assert ids(even) == ["dev00", "dev02"] and even.body["total"] == 5


def test_list_sorting(fleet: AdminApi) -> None:
    assert ids(fleet.get(fleet.url("/identities?sort=identity&order=desc&limit=2"))) == [
        "dev09", "dev08"]
    assert ids(fleet.get(fleet.url("/identities?sort=created&order=desc&limit=1"))) == [
        "dev09"]
    assert ids(fleet.get(fleet.url("/identities?sort=status&limit=1"))) == ["dev03"]


@pytest.mark.parametrize(("query", "words"), [
    ("limit=ten", "limit must be an integer 0..1000"),
    ("limit=1001", "limit must be an integer 0..1000"),
    ("offset=-1", "offset must be an integer"),
    ("status=asleep", "status must be one of"),
    ("sort=colour", "sort must be one of"),
    ("order=up", "order must be one of"),
    ("online=maybe", "online must be true or false"),
    ("tag_value=x", "tag_value needs tag_name"),
    ("tagname=x", "unknown query parameters ['tagname']"),
    ("limit=1&limit=2", "limit given more than once"),
])
def test_list_bad_query(fleet: AdminApi, query: str, words: str) -> None:
    answer = fleet.get(fleet.url(f"/identities?{query}"))
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert words in answer.body["message"]


def _provision(admin_api: AdminApi, identity: str) -> str:
    return provision_mqtt("127.0.0.1", admin_api.broker.port, identity)


def test_online_filter_and_sort_with_a_connected_device(fleet: AdminApi) -> None:
    token = _provision(fleet, "dev07")
    assert count(fleet, "&online=true") == 0
    with RawClient("127.0.0.1", fleet.broker.port) as device:
        device.connect(username="", password=token.encode())
        device.send(Pingreq())
        assert device.recv() == Pingresp()
        assert ids(fleet.get(fleet.url("/identities?online=true"))) == ["dev07"]
        assert count(fleet, "&online=false") == 9
        first = fleet.get(fleet.url("/identities?sort=online&order=desc&limit=1"))
        assert ids(first) == ["dev07"] and first.body["devices"][0]["online"] is True
        assert ids(fleet.get(fleet.url("/identities?sort=online&limit=1"))) == ["dev00"]
    wait_until(lambda: count(fleet, "&online=true") == 0)


# -- streamed bulk import -------------------------------------------------------------------

def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_import_10k_rows_with_bad_ones(admin_api: AdminApi) -> None:
    assert admin_api.request("POST", admin_api.url("/identities"), {
        "identity": "dev00042", "tags": [{"name": "batch", "value": "old"}]}).status == 201
    lines = ["ID, tag:batch, tag:site"]
    expected_failed: list[tuple[int, str, str]] = []
    good: set[str] = set()
    line = 2
    for i in range(10_000):
        identity = f"dev{i:05d}"
        row = f"{identity},b{i // 1000},s{i % 3}|all"
        if i % 500 == 7:
            identity = f"bad/{i}"
            row = f"{identity},b,s"
            expected_failed.append((line, identity, "invalid_identity"))
        elif i % 1000 == 999:
            identity = f"dev{i - 1:05d}"
            row = f"{identity},again,"
            expected_failed.append((line, identity, "conflict"))
        elif i == 42:
            expected_failed.append((line, identity, "conflict"))  # exists already
        elif i == 5000:
            row = f"{identity},b5,s,extra"
            expected_failed.append((line, identity, "bad_request"))
        elif i == 2500:
            row = f'{identity},"two\nlines",all'  # a quoted cell across lines
            good.add(identity)
        else:
            good.add(identity)
        lines.append(row)
        line += row.count("\n") + 1
    body = ("\r\n".join(lines) + "\r\n").encode()
    answer = admin_api.request("POST", admin_api.url("/identities"),
                               chunks=_chunks(body, 7919), content_type="text/csv")
    assert answer.status == 200, answer.body
    assert answer.body["added"] == len(good) == 10_000 - 20 - 10 - 1 - 1
    assert [(f["line"], f["identity"], f["error"]) for f in answer.body["failed"]] == \
        expected_failed
    assert all(f["message"] for f in answer.body["failed"])
    # nothing half-written: every added row whole, every refused row absent or untouched
    assert count(admin_api) == len(good) + 1
    assert count(admin_api, "&tag_name=site&tag_value=all") == len(good)
    assert count(admin_api, "&tag_name=batch") == len(good) + 1
    assert count(admin_api, "&identity=bad*") == 0
    assert admin_api.get(admin_api.url("/identities/dev00042")).body["tags"] == [
        {"name": "batch", "value": "old"}]
    assert count(admin_api, "&tag_name=batch&tag_value=again") == 0
    assert admin_api.get(admin_api.url("/identities/dev02500")).body["tags"] == [
        {"name": "batch", "value": "two\nlines"}, {"name": "site", "value": "all"}]
    values = {v["value"]: v["count"] for v in admin_api.get(admin_api.url("/tags/site")).body}
    assert values["all"] == len(good) and sum(values.values()) == 2 * len(good) - 1


def test_batches_are_committed_while_the_body_arrives(admin_api: AdminApi) -> None:
    head = "ID\n" + "".join(f"a{i:05d}\n" for i in range(3000))
    rest = "".join(f"b{i:05d}\n" for i in range(500))

    def body() -> Iterator[bytes]:
        yield head.encode()
        # The request is still open: the first 3000 rows must already be in the store.
        wait_until(lambda: admin_api.call(
            lambda: admin_api.service.countIdentities()["total"]) == 3000)
        yield rest.encode()

    answer = admin_api.request("POST", admin_api.url("/identities"), chunks=body(),
                               content_type="text/csv")
    assert answer.body == {"added": 3500, "failed": []}


def test_a_body_beyond_client_max_size_is_imported(admin_api: AdminApi) -> None:
    rows = "".join(f"{'x' * 242}{i:06d}\n" for i in range(70_000))
    body = ("ID\n" + rows).encode()
    assert len(body) > 16 * 1024 * 1024  # admin.app's client_max_size
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=body,
                               content_type="text/csv; charset=utf-8", timeout=120)
    assert answer.status == 200 and answer.body == {"added": 70_000, "failed": []}
    assert count(admin_api) == 70_000


def test_a_cut_import_keeps_whole_batches_only(admin_api: AdminApi,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="admin.rest.bulk")
    rows = "ID,tag:k\n" + "".join(f"c{i:05d},v\n" for i in range(2500))
    data = rows.encode()
    host, port = admin_api.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST {admin_api.url('/identities')} HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: text/csv\r\n"
                      f"Content-Length: {len(data) + 100000}\r\n\r\n").encode() + data)
        wait_until(lambda: admin_api.call(
            lambda: admin_api.service.countIdentities()["total"]) == 2000)
    # the handler has seen the cut (it says so), and the last 500 rows, not a whole batch
    # yet, are not written
    wait_until(lambda: "2000 identities added before the cut" in caplog.text)
    assert count(admin_api) == 2000
    assert count(admin_api, "&tag_name=k&tag_value=v") == 2000


@pytest.mark.parametrize(("body", "words"), [
    (b"", "empty CSV"), (b"Name\nx\n", "first CSV column must be ID"),
    (b"ID,colour\nx,red\n", "unknown CSV column"), (b"\xff\xfe\n", "UTF-8")])
def test_a_bad_header_refuses_the_import(admin_api: AdminApi, body: bytes, words: str) -> None:
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=body,
                               content_type="text/csv")
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert words in answer.body["message"]
    assert count(admin_api) == 0


def test_import_refusals(admin_api: AdminApi) -> None:
    csv_body = b"ID\na\n"
    bad_expire = admin_api.request("POST", admin_api.url("/identities?expire=soon"),
                                   raw=csv_body, content_type="text/csv")
    assert (bad_expire.status, bad_expire.body["code"]) == (400, "bad_request")
    latin = admin_api.request("POST", admin_api.url("/identities"), raw=csv_body,
                              content_type="text/csv; charset=latin-1")
    assert (latin.status, latin.body["code"]) == (415, "unsupported_media_type")
    nowhere = admin_api.request("POST", "/api/v1/connectors/nosuch/identities", raw=csv_body,
                                content_type="text/csv")
    assert nowhere.status == 404
    assert count(admin_api) == 0


def _form(fields: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "fleetgate-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
             + value + b"\r\n" for name, value in fields]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def test_multipart_import_with_expire_after_the_csv(admin_api: AdminApi) -> None:
    body, content_type = _form([("identities", b"ID\nm1\nm2\nbad/\n"), ("expire", b"1")])
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=body,
                               content_type=content_type)
    assert answer.status == 200
    assert answer.body["added"] == 2 and [f["line"] for f in answer.body["failed"]] == [4]
    # expire (1 µs after the epoch) applied to every row: the sweep deletes them
    gone = admin_api.call(lambda: admin_api.service.expire_identities(
        connector_id=admin_api.cid))
    assert sorted(gone) == ["m1", "m2"] and count(admin_api) == 0


@pytest.mark.parametrize("fields", [
    [("expire", b"1")], [("identities", b"ID\n"), ("other", b"x")],
    [("identities", b"ID\na\n"), ("identities", b"ID\nb\n")],
    [("identities", b"ID\na\n"), ("expire", b"-5")]])
def test_multipart_refusals(admin_api: AdminApi, fields: list[tuple[str, bytes]]) -> None:
    body, content_type = _form(fields)
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=body,
                               content_type=content_type)
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert count(admin_api) == 0


def test_a_malformed_multipart_header_is_a_bad_request(admin_api: AdminApi) -> None:
    """A part header aiohttp cannot parse (a control character in it) is the client's fault:
    400 with the JSON error, not a 500 (found by the schemathesis run)."""
    body = (b'--b\r\nContent-Disposition: form-data; name="x\x12y"\r\n\r\n1\r\n'
            b"--b--\r\n")
    answer = admin_api.request("POST", admin_api.url("/identities"), raw=body,
                               content_type="multipart/form-data; boundary=b")
    assert (answer.status, answer.body["code"]) == (400, "bad_request")
    assert "malformed request body" in answer.body["message"]


# -- MuranoCLI aliases ----------------------------------------------------------------------

def test_murano_identity_aliases(admin_api: AdminApi) -> None:
    base = f"/api:1/service/{admin_api.cid}/device2"
    admin_api.request("PUT", admin_api.url("/resources/out"),
                      {"format": "string", "settable": True})
    assert admin_api.request("PUT", f"{base}/identity/m1", {"locked": False}).status == 201
    assert admin_api.get(f"{base}/identity/m1").body["identity"] == "m1"
    assert admin_api.request("PATCH", f"{base}/identity/m1",
                             {"locked": True}).body["status"] == "locked"
    state = admin_api.request("PATCH", f"{base}/identity/m1/state", {"out": "go"})
    assert state.status == 200 and state.body["out"]["set"] == "go"
    assert admin_api.get(f"{base}/identity/m1/state").body == state.body
    body, content_type = _form([("identities", b"ID\nm2\nm3\n")])
    bulk = admin_api.request("POST", f"{base}/identities", raw=body, content_type=content_type)
    assert bulk.body == {"added": 2, "failed": []}
    listed = admin_api.get(f"{base}/identity/?limit=2")
    assert ids(listed) == ["m1", "m2"] and listed.body["mayLoadMore"] is True
    assert admin_api.request("DELETE", f"{base}/identity/m1").status == 200
    assert admin_api.get(f"{base}/identity/m1").status == 404
