"""Hypothesis against the device HTTP API (connector-spec §6): bodies, query strings and the
headers devices send (``Request-Timeout``, ``If-Modified-Since``, ``Range``, credentials), made
of form-ish text and random bytes. Every answer is below 500 with a ``text/plain`` reason on
errors, and a device's stored state only ever holds valid values of defined resources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.admin.devicesite import DeviceSite, define, running_device_site

WRITE = "/onep:v1/stack/alias"
# Form-ish text: the characters forms are made of, aliases the device has, and any text.
PIECES = st.sampled_from(["temp", "msg", "cmd", "alias", "=", "&", "%", "%zz", "%ff", "%00",
                          "+", "1", "-1e999", "1e400", "nan", "2.5", "\u00e9", "\ud7ff", "?"])
FORMISH = st.lists(PIECES | st.text(max_size=5), max_size=12).map("".join)
BODY = FORMISH.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=40)
HEADER = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeviceSite, str]]:
    with running_device_site(Path(tmp_path_factory.mktemp("fuzz"))) as s:
        define(s, "temp", format="number")
        define(s, "msg", format="string")
        define(s, "cmd", format="string", settable=True)
        s.device("POST", "/provision/upload?id=fw", b"0123456789", form=False,
                 token=(token := s.activate("dev1")))
        yield s, token


def _url_safe(query: str) -> str:
    """The query as a client puts it on the request line: non-ASCII (and space) escaped,
    everything else (stray ``%``, ``&``, ``=``) left as generated."""
    return quote(query, safe="!#$%&'()*+,/:;=?@[]~-._")


def _checked(reply_status: int, content_type: str | None) -> None:
    assert reply_status < 500
    if reply_status >= 400:
        assert (content_type or "").startswith("text/plain")


def _state_is_valid(s: DeviceSite) -> None:
    state = s.op("getIdentityState", identity="dev1")
    assert set(state) <= {"temp", "msg", "cmd"}
    temp = state.get("temp", {}).get("reported")
    assert temp is None or isinstance(temp, int | float)


def test_writes_reads_and_records(site: tuple[DeviceSite, str]) -> None:
    s, token = site

    @given(path=st.sampled_from([WRITE, f"{WRITE}?temp", "/onep:v1/stack/record"]), body=BODY,
           content_type=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                                         "application/x-www-form-urlencoded; charset=latin-1"]))
    @SETTINGS
    def run(path: str, body: bytes, content_type: str) -> None:
        reply = s.device("POST", path, body, token=token, form=False,
                         Content_Type=content_type)
        _checked(reply.status, reply.headers.get("content-type"))

    run()
    _state_is_valid(s)


def test_queries_and_device_headers(site: tuple[DeviceSite, str]) -> None:
    s, token = site

    @given(query=FORMISH, timeout=st.none() | HEADER | st.sampled_from(["0", "1", "999999999"]),
           since=st.none() | HEADER | st.sampled_from(["0", "1e9", "Thu, 01 Jan 1970 00:00:00"]),
           cik=st.sampled_from([token, "", "x" * 40, token.lower()]))
    @SETTINGS
    def run(query: str, timeout: str | None, since: str | None, cik: str) -> None:
        headers = {}
        if timeout is not None:
            headers["Request-Timeout"] = timeout
        if since is not None:
            headers["If-Modified-Since"] = since
        # A poll that would wait is cut short: at most 1 ms.
        if timeout is not None and timeout.isdigit():
            headers["Request-Timeout"] = "1"
        reply = s.device("GET", f"{WRITE}?{_url_safe(query)}", token=cik, **headers)
        _checked(reply.status, reply.headers.get("content-type"))

    run()


def test_activation_and_content(site: tuple[DeviceSite, str]) -> None:
    s, token = site

    @given(body=BODY, query=FORMISH, range_=st.none() | HEADER
           | st.sampled_from(["bytes=0-0", "bytes=5-", "bytes=-3", "bytes=9-2", "bytes=0-99"]))
    @SETTINGS
    def run(body: bytes, query: str, range_: str | None) -> None:
        reply = s.device("POST", "/provision/activate", body)
        _checked(reply.status, reply.headers.get("content-type"))
        headers = {"Range": range_} if range_ is not None else {}
        reply = s.device("GET", f"/provision/download?{_url_safe(query)}", token=token, **headers)
        _checked(reply.status, reply.headers.get("content-type"))
        reply = s.device("GET", "/provision/download?id=fw", token=token, **headers)
        _checked(reply.status, reply.headers.get("content-type"))

    run()
