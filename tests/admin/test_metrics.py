"""``GET /metrics`` (admin/metrics.py): scraped over real HTTP, parsed with prometheus_client's
parser, and seen to move with real MQTT device traffic."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from admin.app import create_app
from broker.storage.commit import COMMIT_BUCKETS, GroupCommitter
from broker.storage.memory_store import MemoryStore
from tests.admin.gatewaysite import (
    TOKEN,
    Site,
    device,
    provision,
    refused_connect,
    start_gateway_site,
    write,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    site, stop = start_gateway_site(tmp_path)
    yield site
    stop()


def scrape(site: Site, port: int | None = None) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, sorted labels), and each family's type; from ``site`` or from
    another admin app on ``port``."""
    status, headers, body = _get(port or site.port)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def _get(port: int) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_token(site: Site) -> None:
    status, _, _ = site.request("GET", "/metrics", token=None)
    assert status == 401
    status, _, _ = site.request("GET", "/metrics", token="wrong")
    assert status == 401


def test_metric_families_and_types(site: Site) -> None:
    samples, types = scrape(site)
    expected = {
        "fleetgate_build_info": "gauge",
        "fleetgate_connections": "gauge",
        "fleetgate_clients_connected": "gauge",
        "fleetgate_connections_opened": "counter",
        "fleetgate_connections_refused": "counter",
        "fleetgate_connections_closed": "counter",
        "fleetgate_messages_received": "counter",
        "fleetgate_messages_sent": "counter",
        "fleetgate_messages_dropped": "counter",
        "fleetgate_received_bytes": "counter",
        "fleetgate_sent_bytes": "counter",
        "fleetgate_retained_messages": "gauge",
        "fleetgate_sessions": "gauge",
        "fleetgate_subscriptions": "gauge",
        "fleetgate_store_commits": "counter",
        "fleetgate_store_batches": "counter",
        "fleetgate_store_writes": "counter",
        "fleetgate_store_commit_failures": "counter",
        "fleetgate_store_commit_seconds": "histogram",
        "fleetgate_debug_log_entries": "counter",
        "fleetgate_event_log_entries": "counter",
        "fleetgate_streams_open": "gauge",
        "fleetgate_streams_opened": "counter",
        "fleetgate_stream_messages_sent": "counter",
        "fleetgate_stream_messages_dropped": "counter",
    }
    assert {name: types.get(name) for name in expected} == expected
    assert not any(name.startswith("fleetgate_webhook") for name in types)  # webhooks off
    # The histogram's buckets are the committer's, cumulative, ending with +Inf.
    bounds = [float(dict(labels)["le"]) for (name, labels) in samples
              if name == "fleetgate_store_commit_seconds_bucket"]
    assert bounds == [*COMMIT_BUCKETS, float("inf")]


def test_values_move_with_mqtt_traffic(site: Site) -> None:
    before, _ = scrape(site)
    token = provision(site, "dev1")  # one anonymous connection, one PUBLISH
    refused_connect(site)  # bad_credentials
    with device(site, token) as d:
        for n in range(1, 4):
            write(d, "temp", str(20 + n).encode(), packet_id=n)
        during, _ = scrape(site)
    site.running.offline("")  # the device's connection is gone
    site.wait(lambda: not site.running.broker.connections)
    after, _ = scrape(site)
    cid = site.cid

    def moved(name: str, samples: Samples = during, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    assert value(during, "fleetgate_connections") == 1
    assert value(during, "fleetgate_clients_connected") == 1
    assert value(after, "fleetgate_connections") == 0
    assert moved("fleetgate_connections_opened_total") == 3
    assert moved("fleetgate_connections_refused_total") == 1
    # $provision and 3 writes, all QoS 1; the token reply goes out at QoS 0 or 1.
    assert moved("fleetgate_messages_received_total", qos="1") == 4
    assert moved("fleetgate_messages_received_total", qos="0") == 0
    assert sum(moved("fleetgate_messages_sent_total", qos=q) for q in "012") >= 1
    # CONNECT packets: the provisioning session, the refused one and the device.
    assert moved("fleetgate_packets_received_total", type="CONNECT") == 3
    assert moved("fleetgate_packets_received_total", type="SUBSCRIBE") == 0
    assert moved("fleetgate_provision_requests_total", connector=site.cid,
                 result="accepted") == 1
    assert moved("fleetgate_received_bytes_total") > 0
    closed = {dict(labels)["reason"]: v for (name, labels), v in after.items()
              if name == "fleetgate_connections_closed_total"}
    assert sum(closed.values()) == 3  # provisioning, refused, device: all closed, by reason
    assert closed == site.call(lambda: dict(site.running.broker.stats.close_reasons))
    # Each QoS 1 write was committed (and timed) before its PUBACK.
    assert moved("fleetgate_store_commits_total") >= 3
    assert moved("fleetgate_store_writes_total") >= 3
    commits = moved("fleetgate_store_commit_seconds_count")
    assert commits == moved("fleetgate_store_commits_total")
    assert moved("fleetgate_store_commit_seconds_bucket", le="+Inf") == commits
    assert moved("fleetgate_store_commit_seconds_sum") > 0
    # The logs: an accepted provisioning, the connect, three data_in; one refusal.
    assert moved("fleetgate_event_log_entries_total", connector=cid, type="provision") == 1
    assert moved("fleetgate_event_log_entries_total", connector=cid, type="connect") == 1
    assert moved("fleetgate_event_log_entries_total", connector=cid, type="data_in") == 3
    refusals = len([e for e in site.call(lambda: site.service.getLogs(type="debug"))
                    if e["type"] == "bad_credentials"])
    assert refusals >= 1
    assert moved("fleetgate_debug_log_entries_total", after, connector=cid,
                 reason="bad_credentials") == refusals


def test_openmetrics_when_asked(site: Site) -> None:
    status, headers, body = site.request(
        "GET", "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_apps_in_one_process_keep_their_own_registries(site: Site) -> None:
    """A second app on the same service, without a broker: no collision with the first app's
    registry, and no broker metrics."""

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(create_app(site.service, TOKEN), access_log=None)
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        server = tcp._server
        assert server is not None
        return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    runner, port = site.run(start())
    try:
        refused_connect(site)
        refusals = len([e for e in site.call(lambda: site.service.getLogs(type="debug"))
                        if e["type"] == "bad_credentials"])
        assert refusals >= 1
        alone, types = scrape(site, port)
        assert "fleetgate_connections" not in types and "fleetgate_store_commits" not in types
        assert value(alone, "fleetgate_debug_log_entries_total", connector=site.cid,
                     reason="bad_credentials") == refusals
        full, types = scrape(site)
        assert "fleetgate_connections" in types
        assert value(full, "fleetgate_debug_log_entries_total", connector=site.cid,
                     reason="bad_credentials") == refusals
    finally:
        site.run(runner.cleanup())


def test_commit_latency_counted_for_inline_commits_too() -> None:
    """The histogram's source without a writer thread (``storage.sync`` batch/none): each
    commit is timed once, into the bucket its duration falls in."""
    turns: list[Callable[[], None]] = []
    committer = GroupCommitter(MemoryStore(), turns.append)
    for n in range(3):
        committer.put("retained", b"k%d" % n, b"v")
        turns.pop()()
    assert committer.commits == 3 and sum(committer.commit_counts) == 3
    assert 0 < committer.commit_seconds < 3 * COMMIT_BUCKETS[-1]

    def broken(txn: object) -> None:
        raise OSError("no space left on device")

    failing = GroupCommitter(MemoryStore(), turns.append)
    failing.submit(broken)  # the transaction fails: no commit, nothing timed
    turns.pop()()
    assert failing.failures == 1 and sum(failing.commit_counts) == 0
