"""Starts the HTTP sidecar next to the broker: the ``on_started`` hook ``broker.cli`` hands to
``broker.transport.server.run`` (the core never imports this package).

The device HTTP API is one application served three ways on the broker's loop: plain HTTP on
``listeners.http`` (only in devmode, or when ``--http`` asked for it: ``server.plain_http``),
HTTPS on ``listeners.https``, and HTTP over ALPN ``http/1.1`` on the MQTT TLS port (registered
in the broker server's ``alpn_protocols``). The admin API on ``listeners.admin`` starts last, so
a healthy admin API means every listener is up. Stopping closes the admin site first, then the
device application (its long polls answer 304 at once), after withdrawing ALPN ``http/1.1``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from admin.app import create_app
from admin.device_http import create_device_app
from admin.token import load_or_create_token
from broker.config import Config, parse_address
from broker.gateway.errors import ServiceError
from broker.gateway.hosts import connector_in_host
from broker.transport.tls import TlsInfo, TlsListener, make_context

log = logging.getLogger(__name__)

Cleanup = Callable[[], Awaitable[None]]


async def _serve(runner: web.AppRunner, address: str, name: str) -> int:
    """Set ``runner`` up and listen on ``address``; the bound port."""
    await runner.setup()
    return await _listen(runner, address, name)


async def _listen(runner: web.AppRunner, address: str, name: str) -> int:
    """Serve the set-up ``runner`` on ``address`` too; the bound port."""
    host, port = parse_address(address, name)
    # aiohttp's default backlog (128) drops SYNs when a fleet reconnects at once (each retry
    # costs a device a second); the MQTT listeners use 4096 too.
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=4096)
    await site.start()
    return _bound_port(site, port)


def _bound_port(site: web.BaseSite, port: int) -> int:
    listening = site._server  # aiohttp has no public accessor for the bound port
    if listening is not None and getattr(listening, "sockets", None):
        return int(listening.sockets[0].getsockname()[1])
    return port


class TlsSite(web.BaseSite):
    """A runner's HTTP server behind ``broker.transport.tls`` (pyOpenSSL: client certificates
    are accepted unverified and reach the handlers through ``TLS_INFO``); the runner's cleanup
    stops it like any site."""

    __slots__ = ("_host", "_port", "_listener")

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 listener_of: Callable[[web.Server], TlsListener]) -> None:
        super().__init__(runner, backlog=4096)
        self._host, self._port = host, port
        assert runner.server is not None
        self._listener = listener_of(runner.server)

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._listener, self._host, self._port,
                                                backlog=self._backlog, reuse_address=True)

    async def stop(self) -> None:
        self._listener.close_handshaking()
        await super().stop()


async def start_site(service: Any, token: str, address: str,
                     server: Any = None) -> tuple[web.AppRunner, int]:
    """Serve the admin app for ``service`` on ``address``; the runner and the bound port."""
    runner = web.AppRunner(create_app(service, token, server), access_log=None)
    return runner, await _serve(runner, address, "listeners.admin")


def device_runner(service: Any, domain: str = "localhost", submit: Any = None,
                  mirror: Any = None) -> web.AppRunner:
    """The device HTTP API for ``service``; writes go through ``submit`` (the broker's group
    committer), then to ``mirror``."""
    # handler_cancellation: a device that hangs up ends its long poll or upload at once.
    return web.AppRunner(create_device_app(service, domain, submit, mirror),
                         access_log=None, handler_cancellation=True, shutdown_timeout=10.0)


async def start_device_site(service: Any, address: str, domain: str = "localhost",
                            submit: Any = None, mirror: Any = None
                            ) -> tuple[web.AppRunner, int]:
    """Serve the device HTTP API for ``service`` on ``address``; writes go through ``submit``
    (the broker's group committer), then to ``mirror``. The runner and the bound port."""
    runner = device_runner(service, domain, submit, mirror)
    return runner, await _serve(runner, address, "listeners.http")


def tls_failure_logger(service: Any, domain: str
                       ) -> Callable[[tuple[str, int], TlsInfo | None, str, str], None]:
    """``on_failure`` for the HTTPS listener: a failed or abandoned handshake goes to the
    debug log of the connector the SNI names (else the default one), with the client's IP."""

    def failed(peer: tuple[str, int], info: TlsInfo | None, reason: str, detail: str) -> None:
        named = connector_in_host(info.server_name, domain) if info is not None else None
        try:
            try:
                cid, _ = service.device_connector(named)
            except ServiceError:  # an SNI naming no connector: the default one's log
                cid, _ = service.device_connector(None)
        except ServiceError:
            return  # no connector at all: nobody's log to write to
        service.logs[cid].debug(service.clock(), reason, ip=peer[0], protocol="http",
                                connection_id=os.urandom(16).hex(), detail=detail)

    return failed


def admin_hook(config: Config) -> Callable[[Any], Awaitable[Cleanup | None]]:
    """An ``on_started`` hook: the device HTTP site on ``config.listeners.http`` (devmode or
    ``--http``), then the token file and the admin site on ``config.listeners.admin``."""

    async def on_started(server: Any) -> Cleanup | None:
        service = getattr(server.hooks, "service", None)
        if service is None:
            return None
        runners: list[web.AppRunner] = []
        alpn = getattr(server, "alpn_protocols", None)

        async def cleanup() -> None:
            if alpn is not None:
                alpn.pop("http/1.1", None)  # new clients asking for it are refused from now
            for runner in reversed(runners):
                await runner.cleanup()

        try:
            http = config.listeners.http
            plain = bool(http and (config.server.devmode or config.server.plain_http))
            https = config.listeners.https
            # ALPN http/1.1 on the MQTT TLS port, when that listener is open.
            over_mqtt_tls = alpn is not None and "mqtt_tls" in getattr(server, "addresses", {})
            if plain or https or over_mqtt_tls:
                committer = getattr(server, "committer", None)
                # The MQTT hooks own the $data/<cid>/<identity>/<alias> topics (product.md §4):
                # HTTP writes are mirrored there as MQTT writes are.
                mirror = getattr(server.hooks, "mirror_data", None)
                runner = device_runner(service, config.server.domain,
                                       committer.submit if committer is not None else None,
                                       mirror)
                await runner.setup()
                runners.append(runner)
                server.device_app = runner.app  # its counters feed the admin app's /metrics
                if plain:
                    _announce(server, "http", http, await _listen(runner, http, "listeners.http"))
                if https:
                    port = await _listen_tls(runner, server, config, https, service)
                    _announce(server, "https", https, port)
                if over_mqtt_tls:
                    assert runner.server is not None and alpn is not None
                    alpn["http/1.1"] = runner.server
                    log.info("mqtt_tls also serves the device HTTP API (ALPN http/1.1)")
            address = config.listeners.admin
            if address:
                token, created = load_or_create_token(config.server.data)
                if created:
                    print(f"fleetgate admin token (shown once, kept in "
                          f"{config.server.data}/admin.token): {token}", flush=True)
                runner, port = await start_site(service, token, address, server)
                runners.append(runner)
                _announce(server, "admin", address, port)
        except BaseException:
            await cleanup()
            raise
        return cleanup if runners else None

    return on_started


async def _listen_tls(runner: web.AppRunner, server: Any, config: Config, address: str,
                      service: Any) -> int:
    """Serve ``runner`` over TLS on ``address`` with the broker's server certificate."""
    host, port = parse_address(address, "listeners.https")
    tls = config.tls
    context = make_context(*server.certificate(), tls.min_version, tls.ciphers)
    failed = tls_failure_logger(service, config.server.domain)
    site = TlsSite(runner, host, port, lambda http: TlsListener(
        context, {"http/1.1": http}, tls.handshake_timeout, failed))
    await site.start()
    return _bound_port(site, port)


def _announce(server: Any, name: str, address: str, port: int) -> None:
    """Log the bound port, and list it in the server's ready line."""
    log.info("%s listening on %s (port %d)", name, address, port)
    addresses = getattr(server, "addresses", None)
    if isinstance(addresses, dict):
        addresses[name] = (parse_address(address, name)[0], port)
