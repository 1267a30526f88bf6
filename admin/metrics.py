"""``GET /metrics``: Prometheus metrics (product.md §6), under the admin token like the API.

Values are read live on each scrape by a custom collector over this app's broker server,
service, streams and webhooks, in a registry of the app's own (not prometheus_client's global
one: several apps in one process never collide, and nothing is counted twice). The text format
is chosen from the scraper's ``Accept`` header (Prometheus text, or OpenMetrics when asked).
Broker and store metrics are present only when the app has a running server (``SERVER_KEY``).
Every metric is listed in docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from admin.device_http.context import POLLS, REQUESTS
from admin.sse import STREAMS_KEY
from admin.webhooks import WEBHOOKS_KEY
from broker import __version__
from broker.mqtt import constants as c
from broker.storage.commit import COMMIT_BUCKETS

PACKET_NAMES = c.PACKET_NAMES
# The control packets a client may send, besides PUBLISH.
CLIENT_PACKETS = (c.CONNECT, c.PUBACK, c.PUBREC, c.PUBREL, c.PUBCOMP, c.SUBSCRIBE,
                  c.UNSUBSCRIBE, c.PINGREQ, c.DISCONNECT)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class FleetgateCollector(Collector):
    """Reads the app's live objects at each scrape."""

    def __init__(self, app: web.Application, service: Any, server: Any) -> None:
        self.app = app
        self.service = service
        self.server = server

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("fleetgate_build_info", "Fleetgate version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        server = self.server
        if server is not None and getattr(server, "broker", None) is not None:
            yield from _broker_metrics(server.broker)
            yield from _store_metrics(server.broker.committer)
        device_app = getattr(server, "device_app", None)
        if device_app is not None:
            yield from _device_http_metrics(device_app)
        yield from _log_metrics(self.service)
        streams = self.app.get(STREAMS_KEY)
        if streams is not None:
            yield from _stream_metrics(streams)
        webhooks = self.app.get(WEBHOOKS_KEY)
        if webhooks is not None:
            yield from _webhook_metrics(webhooks)


def _broker_metrics(broker: Any) -> Iterator[Metric]:
    s = broker.stats
    yield _gauge("fleetgate_connections", "Open MQTT network connections",
                 len(broker.connections))
    yield _gauge("fleetgate_clients_connected", "MQTT clients connected (CONNECT accepted)",
                 len(broker.clients))
    yield _counter("fleetgate_connections_opened", "MQTT network connections accepted",
                   s.connections_total)
    yield _counter("fleetgate_connections_refused", "CONNECT packets refused (CONNACK != 0)",
                   s.connections_refused)
    closed = CounterMetricFamily("fleetgate_connections_closed",
                                 "MQTT connections closed, by reason", labels=["reason"])
    for reason, count in sorted(s.close_reasons.items()):
        closed.add_metric([reason], count)
    yield closed
    for name, doc, by_qos in (
            ("fleetgate_messages_received", "PUBLISH packets received from clients, by QoS",
             s.received_by_qos),
            ("fleetgate_messages_sent", "PUBLISH packets sent to clients, by QoS",
             s.sent_by_qos)):
        family = CounterMetricFamily(name, doc, labels=["qos"])
        for qos, count in enumerate(by_qos):
            family.add_metric([str(qos)], count)
        yield family
    packets = CounterMetricFamily(
        "fleetgate_packets_received", "MQTT control packets received from clients, by type "
        "(PUBLISH: see fleetgate_messages_received)", labels=["type"])
    for packet_type in CLIENT_PACKETS:
        packets.add_metric([PACKET_NAMES[packet_type]], s.packets_received[packet_type])
    yield packets
    yield _counter("fleetgate_messages_dropped",
                   "Messages dropped: QoS 0 to paused slow consumers, or beyond a full "
                   "session queue", s.messages_dropped)
    live_in = sum(conn.bytes_in for conn in broker.connections)
    live_out = sum(conn.bytes_out for conn in broker.connections)
    yield _counter("fleetgate_received_bytes", "Bytes received on MQTT connections",
                   s.bytes_received + live_in)
    yield _counter("fleetgate_sent_bytes", "Bytes sent on MQTT connections",
                   s.bytes_sent + live_out)
    yield _gauge("fleetgate_retained_messages", "Retained messages", len(broker.retained))
    yield _gauge("fleetgate_sessions", "MQTT sessions (connected and persistent offline)",
                 len(broker.sessions))
    yield _gauge("fleetgate_subscriptions", "MQTT subscriptions", len(broker.tree))


def _store_metrics(committer: Any) -> Iterator[Metric]:
    yield _counter("fleetgate_store_commits", "Store transactions committed by the group "
                   "committer", committer.commits)
    yield _counter("fleetgate_store_batches", "Loop-turn batches committed (several may share "
                   "a commit)", committer.batches_committed)
    yield _counter("fleetgate_store_writes", "Store writes committed", committer.ops_committed)
    yield _counter("fleetgate_store_commit_failures", "Group commits that failed",
                   committer.failures)
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*COMMIT_BUCKETS, float("inf")), committer.commit_counts,
                            strict=True):
        total += count
        buckets.append((floatToGoString(bound), total))
    yield HistogramMetricFamily("fleetgate_store_commit_seconds",
                                "Duration of the group committer's store commits",
                                buckets=buckets, sum_value=committer.commit_seconds)


def _device_http_metrics(app: web.Application) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "fleetgate_http_device_requests", "Device HTTP API requests answered, by route and "
        "status", labels=["route", "status"])
    for (route, status), count in sorted(app[REQUESTS].items()):
        requests.add_metric([route, str(status)], count)
    yield requests
    waiting = {id(poll) for poll in app[POLLS].waiting.values()}
    yield _gauge("fleetgate_http_long_polls_waiting", "Device HTTP long polls waiting for a "
                 "cloud set", len(waiting))


def _log_metrics(service: Any) -> Iterator[Metric]:
    debug = CounterMetricFamily(
        "fleetgate_debug_log_entries",
        "Debug log entries (connector-spec 8.2), by connector and reason; refused "
        "provisioning and authentication attempts are counted here", labels=["connector",
                                                                              "reason"])
    event = CounterMetricFamily(
        "fleetgate_event_log_entries",
        "Event log entries (connector-spec 8.1), by connector and type; type=\"provision\" "
        "counts accepted provisioning requests", labels=["connector", "type"])
    for cid, logs in sorted(service.logs.items()):
        for kind, family in (("debug", debug), ("event", event)):
            for type_, count in sorted(logs.rings[kind].counts.items()):
                family.add_metric([cid, type_], count)
    yield debug
    yield event
    provisions = CounterMetricFamily(
        "fleetgate_provision_requests", "Provision requests (MQTT and HTTP), by connector and "
        "result: accepted, or the debug reason of the refusal", labels=["connector", "result"])
    for (cid, result), count in sorted(service.provision_results.items()):
        provisions.add_metric([cid, result], count)
    yield provisions


def _stream_metrics(streams: Any) -> Iterator[Metric]:
    kinds = ("logs", "events")
    families = (
        (GaugeMetricFamily, "fleetgate_streams_open", "Open SSE streams",
         {k: sum(1 for s in streams.open if s.kind == k) for k in kinds}),
        (CounterMetricFamily, "fleetgate_streams_opened", "SSE streams opened",
         streams.opened),
        (CounterMetricFamily, "fleetgate_stream_messages_sent",
         "Log entries and events written to SSE streams", streams.sent),
        (CounterMetricFamily, "fleetgate_stream_messages_dropped",
         "Log entries and events dropped from the outbox of an SSE stream whose reader fell "
         "behind", streams.dropped),
    )
    for cls, name, doc, values in families:
        family = cls(name, doc, labels=["stream"])
        for kind in kinds:
            family.add_metric([kind], values.get(kind, 0))
        yield family


def _webhook_metrics(webhooks: Any) -> Iterator[Metric]:
    queued = GaugeMetricFamily("fleetgate_webhook_queued", "Events waiting for a webhook URL",
                               labels=["url"])
    counters = [
        ("delivered", "Events delivered to a webhook URL (2xx)"),
        ("failed_attempts", "Webhook POST attempts that failed (error, timeout, 408, 429, "
                            "5xx); each retry counts"),
        ("gave_up", "Events given up after webhooks.max_attempts"),
        ("rejected", "Events a webhook URL answered with 3xx/4xx (not retried)"),
        ("dropped", "Events dropped because the URL's queue was full"),
    ]
    families = {attr: CounterMetricFamily(f"fleetgate_webhook_{attr}", doc, labels=["url"])
                for attr, doc in counters}
    for target in webhooks.targets:
        queued.add_metric([target.label], len(target.queue))
        for attr, family in families.items():
            family.add_metric([target.label], getattr(target, attr))
    yield queued
    yield from families.values()


REGISTRY_KEY: web.AppKey[CollectorRegistry] = web.AppKey("metrics_registry",
                                                         CollectorRegistry)


async def metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": content_type})


def setup(app: web.Application, service: Any, server: Any) -> None:
    """``/metrics`` for ``service`` and the broker ``server`` (None: no broker metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetgateCollector(app, service, server))
    app[REGISTRY_KEY] = registry
    app.router.add_get("/metrics", metrics)
