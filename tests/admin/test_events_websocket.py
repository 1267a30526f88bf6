"""connector-spec §10: the events stream over a WebSocket (``GET …/events``), beside the SSE
one: the same §10 objects, filters, bearer token and shutdown behaviour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.admin.gatewaysite import TOKEN, Site, device, provision, start_gateway_site, write


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site, stop = start_gateway_site(tmp_path)
    try:
        yield site
    finally:
        stop()


async def _receive(site: Site, query: str, count: int, act: Any) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{site.port}/api/v1/connectors/{site.cid}/events{query}"
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        await site_ready(site)
        await asyncio.to_thread(act)
        got = []
        while len(got) < count:
            message = await asyncio.wait_for(ws.receive(), 5)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            got.append(json.loads(message.data))
        return got


async def site_ready(site: Site) -> None:
    """The stream's listener is registered once the upgrade is answered; wait for it."""
    for _ in range(200):
        if await asyncio.to_thread(site.call, lambda: bool(site.service.event_listeners)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the events listener was not registered")


def test_events_arrive_as_json_messages_filtered(site: Site) -> None:
    def act() -> None:
        token = provision(site, "dev1")
        with device(site, token) as d:
            write(d, "temp", b"21")

    got = asyncio.run(_receive(site, "?type=data_in", 1, act))
    assert [(e["type"], e["identity"]) for e in got] == [("data_in", "dev1")]
    assert got[0]["payload"][0]["values"] == {"temp": 21}
    # The listener is gone with the socket.
    site.wait(lambda: not site.service.event_listeners)


def test_refusals(site: Site) -> None:
    async def run() -> list[int]:
        base = f"http://127.0.0.1:{site.port}/api/v1/connectors"
        statuses = []
        async with aiohttp.ClientSession() as session:
            for url, headers in ((f"{base}/{site.cid}/events", {}),
                                 (f"{base}/{site.cid}/events?type=bogus",
                                  {"Authorization": f"Bearer {TOKEN}"}),
                                 (f"{base}/nosuch/events", {"Authorization": f"Bearer {TOKEN}"})):
                with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                    await session.ws_connect(url, headers=headers)
                statuses.append(info.value.status)
            async with session.get(f"{base}/{site.cid}/events",
                                   headers={"Authorization": f"Bearer {TOKEN}"}) as plain:
                statuses.append(plain.status)  # not an Upgrade request
        return statuses

    assert asyncio.run(run()) == [401, 400, 404, 400]


def test_server_stop_closes_open_sockets(site: Site) -> None:
    async def run() -> aiohttp.WSMsgType:
        url = f"http://127.0.0.1:{site.port}/api/v1/connectors/{site.cid}/events"
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            await site_ready(site)
            await asyncio.to_thread(site.cleanup, 5.0)  # runner.cleanup(), as at shutdown
            message = await asyncio.wait_for(ws.receive(), 5)
            return message.type

    assert asyncio.run(run()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
