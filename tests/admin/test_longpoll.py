"""Long polling (connector-spec §6.5) over real HTTP: immediate answers with a pending value,
waking on a cloud set, 304 on timeout, a newer poll ending an older one, the device's own
writes not waking a poll, header errors; and the poll registry on its own (10 000 polls)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from admin.device_http.context import POLLS
from admin.device_http.longpoll import LongPolls, if_modified_since, request_timeout
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service
from broker.storage.memory_store import MemoryStore
from tests.admin.devicesite import DeviceSite, Reply, define, running_device_site

POLL = "/onep:v1/stack/alias"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DeviceSite]:
    with running_device_site(tmp_path) as s:
        define(s, "cmd", format="string", settable=True)
        define(s, "level", format="number", settable=True)
        define(s, "temp", format="number")
        TOKENS[id(s)] = s.activate("dev1")
        yield s
        del TOKENS[id(s)]


TOKENS: dict[int, str] = {}


def token(site: DeviceSite) -> str:
    """dev1's token."""
    return TOKENS[id(site)]


def poll(site: DeviceSite, query: str, timeout_ms: int | str, **headers: str) -> Reply:
    return site.device("GET", f"{POLL}?{query}", token=token(site),
                       Request_Timeout=str(timeout_ms), **headers)


def polls_of(site: DeviceSite) -> LongPolls:
    return site.runners[0].app[POLLS]


class Background:
    """A poll on a thread, to act while it waits."""

    def __init__(self, site: DeviceSite, query: str, timeout_ms: int, **headers: str) -> None:
        self.reply: Reply | None = None
        self.elapsed = 0.0

        def run() -> None:
            start = time.monotonic()
            self.reply = poll(site, query, timeout_ms, **headers)
            self.elapsed = time.monotonic() - start

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self, timeout: float = 10.0) -> Reply:
        self.thread.join(timeout)
        assert self.reply is not None, "the poll did not answer"
        return self.reply


def waiting(site: DeviceSite, count: int = 1) -> None:
    """Wait until ``count`` poll keys are registered (the request reached its wait)."""
    polls = polls_of(site)
    site.wait(lambda: len(polls.waiting) >= count)


def set_state(site: DeviceSite, **values: Any) -> None:
    site.op("setIdentityState", identity="dev1", **values)


def test_pending_value_answers_at_once(site: DeviceSite) -> None:
    set_state(site, cmd="reboot now")
    start = time.monotonic()
    reply = poll(site, "cmd", 30_000)
    assert time.monotonic() - start < 5
    assert (reply.status, reply.text) == (200, "cmd=reboot%20now")
    set_ts = site.op("getIdentityState", identity="dev1")["cmd"]["timestamp"]
    assert parsedate_to_datetime(reply.headers["last-modified"]).timestamp() == set_ts // 10**6
    [(_, event)] = [e for e in site.events if e[1]["type"] == "data_out"]
    assert event["payload"] == [{"timestamp": set_ts, "values": {"cmd": "reboot now"}}]
    assert event["protocol"] == "http"


def test_if_modified_since_filters_pending_values(site: DeviceSite) -> None:
    set_state(site, cmd="a")
    later = str(int(time.time()) + 60)
    assert poll(site, "cmd", 200, If_Modified_Since=later).status == 304
    assert poll(site, "cmd", 200, If_Modified_Since="0").status == 200
    http_date = formatdate(time.time() - 3600, usegmt=True)
    assert poll(site, "cmd", 200, If_Modified_Since=http_date).status == 200
    # A Last-Modified sent back means "seen": the same value does not answer again at once.
    last = poll(site, "cmd", 200).headers["last-modified"]
    assert poll(site, "cmd", 200, If_Modified_Since=last).status == 304


def test_acknowledged_values_are_not_pending(site: DeviceSite) -> None:
    set_state(site, cmd="go")
    assert site.device("POST", POLL, "cmd=go", token=token(site)).status == 204
    assert poll(site, "cmd", 200).status == 304


def test_cloud_set_wakes_the_poll(site: DeviceSite) -> None:
    waiter = Background(site, "cmd&level", 20_000)
    waiting(site, 2)
    start = time.monotonic()
    set_state(site, level=4)
    reply = waiter.result()
    assert time.monotonic() - start < 2
    assert (reply.status, reply.text) == (200, "level=4")
    assert "last-modified" in reply.headers
    assert [e["type"] for _, e in site.events if e["type"] == "data_out"] == ["data_out"]


def test_a_set_of_several_aliases_answers_them_all(site: DeviceSite) -> None:
    waiter = Background(site, "cmd&level", 20_000)
    waiting(site, 2)
    set_state(site, cmd="x", level=2)
    assert waiter.result().text == "cmd=x&level=2"


def test_timeout_answers_304(site: DeviceSite) -> None:
    start = time.monotonic()
    reply = poll(site, "cmd", 300)
    elapsed = time.monotonic() - start
    assert (reply.status, reply.body) == (304, b"")
    assert 0.29 <= elapsed < 5


def test_a_newer_poll_ends_the_older_one(site: DeviceSite) -> None:
    older = Background(site, "cmd", 20_000)
    waiting(site)
    newer = Background(site, "cmd", 20_000)
    assert older.result(5).status == 304
    assert older.elapsed < 5
    waiting(site)
    set_state(site, cmd="for the newer")
    assert newer.result().text == "cmd=for%20the%20newer"


def test_the_devices_own_write_does_not_wake_a_poll(site: DeviceSite) -> None:
    waiter = Background(site, "cmd", 800)
    waiting(site)
    assert site.device("POST", POLL, "cmd=mine", token=token(site)).status == 204
    reply = waiter.result()
    assert reply.status == 304 and waiter.elapsed >= 0.75


def test_another_device_is_not_woken(site: DeviceSite) -> None:
    other = site.activate("dev2")
    waiter = Background(site, "cmd", 800)
    waiting(site)
    site.op("setIdentityState", identity="dev2", cmd="not yours")
    assert waiter.result().status == 304
    reply = site.device("GET", f"{POLL}?cmd", token=other, Request_Timeout="100")
    assert reply.text == "cmd=not%20yours"


def test_undefined_aliases(site: DeviceSite) -> None:
    reply = poll(site, "nothing&temp2", 100)
    assert (reply.status, reply.text) == (404, "not_found")
    set_state(site, cmd="c")
    assert poll(site, "nothing&cmd", 100).text == "cmd=c"


@pytest.mark.parametrize(("headers", "reason"), [
    ({"Request_Timeout": "soon"}, "invalid_request_timeout"),
    ({"Request_Timeout": "-5"}, "invalid_request_timeout"),
    ({"Request_Timeout": "1000", "If_Modified_Since": "yesterday"},
     "invalid_if_modified_since"),
])
def test_bad_headers(site: DeviceSite, headers: dict[str, str], reason: str) -> None:
    reply = site.device("GET", f"{POLL}?cmd", token=token(site), **headers)
    assert (reply.status, reply.text) == (400, reason)


def test_a_poll_needs_credentials(site: DeviceSite) -> None:
    reply = site.device("GET", f"{POLL}?cmd", Request_Timeout="100")
    assert (reply.status, reply.text) == (401, "not_authenticated")


def test_stopping_the_site_answers_waiting_polls(site: DeviceSite) -> None:
    waiter = Background(site, "cmd", 60_000)
    waiting(site)
    start = time.monotonic()
    site.run(site.runners[0].cleanup())
    site.runners.pop(0)
    assert waiter.result().status == 304
    assert time.monotonic() - start < 5


def test_a_client_that_hangs_up_leaves_no_poll(site: DeviceSite) -> None:
    sock = socket.create_connection(("127.0.0.1", site.port))
    sock.sendall((f"GET {POLL}?cmd HTTP/1.1\r\nHost: x\r\nX-Exosite-CIK: {token(site)}\r\n"
                  "Request-Timeout: 60000\r\n\r\n").encode())
    waiting(site)
    sock.close()
    polls = polls_of(site)
    site.wait(lambda: not polls.waiting)  # the handler was cancelled and unregistered


# -- the registry and the header parsers on their own ---------------------------------------

def test_request_timeout_is_clamped() -> None:
    assert request_timeout("1500") == 1.5
    assert request_timeout("300000") == 300.0
    assert request_timeout("999999999") == 300.0
    for bad in ("", "1.5", "-1", "١٢"):
        with pytest.raises(ServiceError):
            request_timeout(bad)


def test_if_modified_since_forms() -> None:
    assert if_modified_since(None) is None
    assert if_modified_since("0") == 0
    assert if_modified_since("1527272454.5") == 1_527_272_454_500_000
    assert if_modified_since("Fri, 25 May 2018 18:20:54 GMT") == 1_527_272_454_999_999
    for bad in ("", "soon", "-5", "Fri, 25 May 2018"):
        with pytest.raises(ServiceError):
            if_modified_since(bad)


def test_ten_thousand_polls_are_cheap_and_woken_by_key() -> None:
    async def scenario() -> None:
        service = Device2Service(MemoryStore())
        polls = LongPolls(service)
        start = time.perf_counter()
        waiting = [polls.wait("c", f"dev{i}", ["cmd"], 60) for i in range(10_000)]
        assert time.perf_counter() - start < 2
        assert len(polls.waiting) == 10_000 and len(asyncio.all_tasks()) == 1
        [listener] = service.set_listeners
        listener("c", "dev42", {"cmd": "x", "other": 1}, 5)
        await asyncio.sleep(0)
        assert [p for p in waiting if p.future.done()] == [waiting[42]]
        assert waiting[42].values == {"cmd": ("x", 5)}
        polls.close()
        assert not polls.waiting and service.set_listeners == []
        assert all(p.future.done() and not p.values for p in waiting[:42] + waiting[43:])
        assert all(p.timer is not None and p.timer.cancelled() for p in waiting)

    asyncio.run(scenario())
