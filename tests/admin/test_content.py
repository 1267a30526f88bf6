"""Content over HTTP (connector-spec §6.7, §7; product.md §6): the device routes
``/provision/download`` and ``/provision/upload`` and the admin routes
``/api/v1/connectors/<cid>/content[/<id>]``, against a gateway with real LMDB and the content
directory in ``tmp_path``: ranges, limits (small ones, and the real 100 MiB default), streaming
of large bodies, events."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.admin.devicesite import ADMIN_TOKEN, DeviceSite, Reply, running_device_site

LIMIT = 1000
DOWNLOAD = "/provision/download"
UPLOAD = "/provision/upload"
BODY = bytes(range(256)) * 2  # 512 bytes


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeviceSite]:
    with running_device_site(tmp_path, content_max_size=LIMIT) as s:
        yield s


@pytest.fixture
def token(site: DeviceSite) -> str:
    return site.activate("dev1")


def content_files(site: DeviceSite, tmp_path: Path) -> list[str]:
    directory = tmp_path / "data" / "content" / site.cid
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def upload(site: DeviceSite, token: str, content_id: str, body: bytes,
           content_type: str = "application/octet-stream") -> Reply:
    return site.request("POST", f"{UPLOAD}?id={content_id}", body,
                        {"X-Exosite-CIK": token, "Content-Type": content_type})


def download(site: DeviceSite, token: str, query: str, **headers: str) -> Reply:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return site.request("GET", f"{DOWNLOAD}{query}", None, {"X-Exosite-CIK": token, **named})


# -- device routes ---------------------------------------------------------------------------

def test_device_upload_list_info_download(site: DeviceSite, token: str) -> None:
    reply = upload(site, token, "fw%201.bin", BODY, "application/x-firmware")
    assert (reply.status, reply.body) == (204, b"")
    upload(site, token, "second", b"2")
    listed = download(site, token, "")
    assert listed.status == 200 and listed.headers["content-type"] == "text/csv; charset=utf-8"
    assert listed.text == "fw 1.bin\nsecond\n"
    info = download(site, token, "?id=fw%201.bin&info=true")
    kind, length, updated, meta = info.text.rstrip("\n").split(",", 3)
    stored = site.op("contentInfo", id="fw 1.bin")
    assert (kind, int(length), int(updated), meta) == (
        "application/x-firmware", len(BODY), stored["updated"] // 10**6, "")
    got = download(site, token, "?id=fw%201.bin&vendor=x&model=y")
    assert (got.status, got.body) == (200, BODY)
    assert got.headers["content-type"] == "application/x-firmware"
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-length"] == str(len(BODY))
    assert got.headers["etag"] == f'"{hashlib.sha256(BODY).hexdigest()}"'


def test_device_upload_emits_content_in(site: DeviceSite, token: str) -> None:
    upload(site, token, "log", b"hello", "text/plain")
    [(cid, event)] = [e for e in site.events if e[1]["type"] == "content_in"]
    assert cid == site.cid and event["identity"] == "dev1" and event["protocol"] == "http"
    assert event["payload"] == {"id": "log", "type": "text/plain", "length": 5}
    assert any(e["type"] == "content_in" for e in site.op("getLogs", type="event"))


def test_upload_meta_from_the_query(site: DeviceSite, token: str) -> None:
    reply = site.request("POST", f"{UPLOAD}?id=m&meta=v2%2Cbeta", b"x",
                         {"X-Exosite-CIK": token})
    assert reply.status == 204
    assert download(site, token, "?id=m&info=true").text.endswith(",v2,beta\n")


@pytest.mark.parametrize(("header", "status", "part", "content_range"), [
    ("bytes=0-9", 206, BODY[0:10], "bytes 0-9/512"),
    ("bytes=500-", 206, BODY[500:], "bytes 500-511/512"),
    ("bytes=-3", 206, BODY[-3:], "bytes 509-511/512"),
    ("bytes=10-100000", 206, BODY[10:], "bytes 10-511/512"),
    ("bytes=-1000", 206, BODY, "bytes 0-511/512"),
    ("bytes=0-1,5-6", 200, BODY, None),  # several ranges: the whole body
    ("items=0-1", 200, BODY, None),
    ("bytes=9-1", 200, BODY, None),
])
def test_device_ranges(site: DeviceSite, token: str, header: str, status: int, part: bytes,
                       content_range: str | None) -> None:
    upload(site, token, "r", BODY)
    got = download(site, token, "?id=r", Range=header)
    assert (got.status, got.body) == (status, part)
    assert got.headers.get("content-range") == content_range
    assert got.headers["content-length"] == str(len(part))


@pytest.mark.parametrize("header", ["bytes=512-", "bytes=600-700", "bytes=-0"])
def test_unsatisfiable_range(site: DeviceSite, token: str, header: str) -> None:
    upload(site, token, "r", BODY)
    got = download(site, token, "?id=r", Range=header)
    assert (got.status, got.text) == (416, "range_not_satisfiable")
    assert got.headers["content-range"] == "bytes */512"


def test_if_range(site: DeviceSite, token: str) -> None:
    upload(site, token, "r", BODY)
    etag = download(site, token, "?id=r").headers["etag"]
    assert download(site, token, "?id=r", Range="bytes=0-0", If_Range=etag).status == 206
    stale = download(site, token, "?id=r", Range="bytes=0-0", If_Range='"old"')
    assert (stale.status, stale.body) == (200, BODY)


def test_device_content_errors(site: DeviceSite, token: str) -> None:
    assert download(site, token, "?id=nope").status == 404
    assert download(site, token, "?id=nope&info=true").text == "not_found"
    assert (download(site, token, "?id=a%2Fb").status,
            download(site, token, "?id=a%2Fb").text) == (400, "bad_request")
    assert site.request("POST", UPLOAD, b"x", {"X-Exosite-CIK": token}).status == 400
    assert site.request("GET", DOWNLOAD).status == 401
    assert site.request("POST", f"{UPLOAD}?id=x", b"x").status == 401
    bad_type = upload(site, token, "x", b"x", "not a type")
    assert (bad_type.status, bad_type.text) == (400, "bad_request")
    assert site.op("contentList") == []


def test_upload_over_the_limit_stores_nothing(site: DeviceSite, token: str,
                                               tmp_path: Path) -> None:
    declared = upload(site, token, "big", b"x" * (LIMIT + 1))
    assert (declared.status, declared.text) == (413, "too_large")
    streamed = site.request("POST", f"{UPLOAD}?id=big", iter([b"x" * 600, b"y" * 401]),
                            {"X-Exosite-CIK": token}, chunked=True)
    assert (streamed.status, streamed.text) == (413, "too_large")
    assert site.op("contentList") == [] and content_files(site, tmp_path) == []
    assert upload(site, token, "big", b"x" * LIMIT).status == 204  # the limit itself is fine


def _raw_expect(site: DeviceSite, token: str, length: int) -> bytes:
    """Send only the headers of an upload with ``Expect: 100-continue``; the first answer."""
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall((f"POST {UPLOAD}?id=e HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {token}\r\n"
                      f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n").encode())
        answer = sock.recv(65536)
        if answer.startswith(b"HTTP/1.1 100"):
            sock.sendall(b"e" * length)
            while b"HTTP/1.1 204" not in answer:
                more = sock.recv(65536)
                assert more, answer
                answer += more
        return answer


def test_a_client_that_hangs_up_mid_upload_leaves_nothing(site: DeviceSite, token: str,
                                                         tmp_path: Path) -> None:
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall((f"POST {UPLOAD}?id=cut HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {token}\r\n"
                      f"Content-Length: {LIMIT}\r\n\r\n").encode() + b"c" * 300)
        site.wait(lambda: content_files(site, tmp_path))  # the temp file exists
    site.wait(lambda: not content_files(site, tmp_path))  # cancelled: removed
    assert site.op("contentList") == []


def test_expect_100_continue(site: DeviceSite, token: str) -> None:
    refused = _raw_expect(site, token, LIMIT + 1)
    assert refused.startswith(b"HTTP/1.1 413") and refused.endswith(b"too_large")
    accepted = _raw_expect(site, token, 10)
    assert accepted.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 204" in accepted
    assert site.op("contentInfo", id="e")["length"] == 10


def test_without_a_content_directory(tmp_path: Path) -> None:
    with running_device_site(tmp_path, content=False) as s:
        token = s.activate("dev1")
        reply = upload(s, token, "x", b"x")
        assert (reply.status, reply.text) == (503, "content_unavailable")
        assert download(s, token, "").text == ""
        assert s.admin("PUT", "/content/x", b"x").json()["code"] == "content_unavailable"


# -- admin routes ----------------------------------------------------------------------------

def test_admin_put_get_head_delete(site: DeviceSite) -> None:
    made = site.admin("PUT", "/content/doc%201", BODY,
                      {"Content-Type": "text/plain", "X-Content-Meta": "first"})
    assert made.status == 201
    info = made.json()
    assert (info["id"], info["type"], info["length"], info["meta"]) == (
        "doc 1", "text/plain", 512, "first")
    assert info["sha256"] == hashlib.sha256(BODY).hexdigest()
    replaced = site.admin("PUT", "/content/doc%201", b"v2", {"Content-Type": "text/plain"})
    assert replaced.status == 200 and replaced.json()["length"] == 2
    assert [i["id"] for i in site.admin("GET", "/content").json()] == ["doc 1"]
    site.admin("PUT", "/content/doc%201", BODY, {"X-Content-Meta": "third"})
    got = site.admin("GET", "/content/doc%201")
    assert (got.status, got.body) == (200, BODY)
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-content-meta"] == "third"
    part = site.admin("GET", "/content/doc%201", headers={"Range": "bytes=2-5"})
    assert (part.status, part.body, part.headers["content-range"]) == (
        206, BODY[2:6], "bytes 2-5/512")
    head = site.admin("HEAD", "/content/doc%201")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == "512"
    assert head.headers["etag"] == f'"{hashlib.sha256(BODY).hexdigest()}"'
    assert head.headers["x-content-meta"] == "third" and "last-modified" in head.headers
    assert site.admin("DELETE", "/content/doc%201").json() == {}
    gone = site.admin("GET", "/content/doc%201")
    assert gone.status == 404 and gone.json()["code"] == "not_found"
    assert site.admin("DELETE", "/content/doc%201").status == 404
    assert site.admin("HEAD", "/content/doc%201").status == 404


def test_admin_errors(site: DeviceSite) -> None:
    over = site.admin("PUT", "/content/big", b"x" * (LIMIT + 1))
    assert over.status == 413
    assert over.json() == {"status": 413, "code": "too_large",
                           "message": f"content is larger than {LIMIT} bytes"}
    streamed = site.admin("PUT", "/content/big", iter([b"x" * 900, b"x" * 200]), chunked=True)
    assert streamed.json()["code"] == "too_large"
    site.admin("PUT", "/content/r", BODY)
    unsatisfiable = site.admin("GET", "/content/r", headers={"Range": "bytes=999-"})
    assert unsatisfiable.status == 416
    assert unsatisfiable.json()["code"] == "range_not_satisfiable"
    assert unsatisfiable.headers["content-range"] == "bytes */512"
    bad_meta = site.admin("PUT", "/content/m", b"x", {"X-Content-Meta": "x" * 5000})
    assert (bad_meta.status, bad_meta.json()["code"]) == (400, "bad_request")
    unauthorized = site.request("GET", f"/api/v1/connectors/{site.cid}/content",
                                port=site.admin_port)
    assert unauthorized.status == 401
    assert site.admin("GET", "/content").json() == [site.op("contentInfo", id="r")]
    missing = site.request("GET", "/api/v1/connectors/nosuch/content",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                           port=site.admin_port)
    assert (missing.status, missing.json()["code"]) == (404, "not_found")


def test_admin_upload_is_not_bound_by_client_max_size(tmp_path: Path) -> None:
    """20 MiB through the admin API, whose client_max_size is 16 MiB: it is streamed."""
    body = os.urandom(20 * 1024 * 1024)
    with running_device_site(tmp_path) as site:
        made = site.admin("PUT", "/content/large", body)
        assert made.status == 201, made.body[:200]
        assert made.json()["sha256"] == hashlib.sha256(body).hexdigest()
        back = site.admin("GET", "/content/large", headers={"Range": "bytes=16777216-"})
        assert back.status == 206 and back.body == body[16 * 1024 * 1024:]


# -- large bodies and the real default limit --------------------------------------------------

def test_100_mb_upload_and_ranged_download(tmp_path: Path) -> None:
    size = 100_000_000
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    with running_device_site(tmp_path) as site:
        token = site.activate("big1")
        chunks = (body[i:i + 4 * 1024 * 1024] for i in range(0, size, 4 * 1024 * 1024))
        reply = site.request("POST", f"{UPLOAD}?id=firmware", chunks,
                             {"X-Exosite-CIK": token, "Content-Length": str(size),
                              "Content-Type": "application/octet-stream"}, timeout=120)
        assert reply.status == 204, reply.body
        assert site.op("contentInfo", id="firmware")["sha256"] == digest
        whole = download(site, token, "?id=firmware")
        assert whole.status == 200 and hashlib.sha256(whole.body).hexdigest() == digest
        del whole
        first, last = 31_999_999, 64_000_123
        part = download(site, token, "?id=firmware", Range=f"bytes={first}-{last}")
        assert part.status == 206
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert hashlib.sha256(part.body).digest() == hashlib.sha256(
            body[first:last + 1]).digest()
        tail = download(site, token, "?id=firmware", Range="bytes=-1000")
        assert tail.body == body[-1000:]


def test_the_default_limit_refuses_100_mib_plus_one(tmp_path: Path) -> None:
    """The real default (100 MiB): a streamed body one byte over is refused, nothing kept."""
    size = 104_857_600 + 1
    with running_device_site(tmp_path) as site:
        assert site.service.content is not None
        assert site.service.content.max_size == 104_857_600
        token = site.activate("big2")
        piece = b"z" * (1024 * 1024)

        def chunks() -> Iterator[bytes]:
            for _ in range(100):
                yield piece
            yield b"!"

        reply = site.request("POST", f"{UPLOAD}?id=toolarge", chunks(),
                             {"X-Exosite-CIK": token}, chunked=True, timeout=120)
        assert (reply.status, reply.text) == (413, "too_large")
        assert site.op("contentList") == []
        assert content_files(site, tmp_path) == []
        declared = _raw_expect(site, token, size)
        assert declared.startswith(b"HTTP/1.1 413")
