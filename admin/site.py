"""Starts the HTTP sidecar next to the broker: the ``on_started`` hook ``broker.cli`` hands to
``broker.transport.server.run`` (the core never imports this package).

Two sites on the broker's loop: the plain device HTTP API on ``listeners.http`` (only in
devmode, or when ``--http`` asked for it: ``server.plain_http``), then the admin API on
``listeners.admin`` (so a healthy admin API means every listener is up). Stopping closes the
admin site first, then the device site (its long polls answer 304 at once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from admin.app import create_app
from admin.device_http import create_device_app
from admin.token import load_or_create_token
from broker.config import Config, parse_address

log = logging.getLogger(__name__)

Cleanup = Callable[[], Awaitable[None]]


async def _serve(runner: web.AppRunner, address: str, name: str) -> int:
    """Set ``runner`` up and listen on ``address``; the bound port."""
    host, port = parse_address(address, name)
    await runner.setup()
    # aiohttp's default backlog (128) drops SYNs when a fleet reconnects at once (each retry
    # costs a device a second); the MQTT listeners use 4096 too.
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=4096)
    await site.start()
    listening = site._server  # aiohttp has no public accessor for the bound port
    if listening is not None and getattr(listening, "sockets", None):
        return int(listening.sockets[0].getsockname()[1])
    return port


async def start_site(service: Any, token: str, address: str,
                     server: Any = None) -> tuple[web.AppRunner, int]:
    """Serve the admin app for ``service`` on ``address``; the runner and the bound port."""
    runner = web.AppRunner(create_app(service, token, server), access_log=None)
    return runner, await _serve(runner, address, "listeners.admin")


async def start_device_site(service: Any, address: str, domain: str = "localhost",
                            submit: Any = None, mirror: Any = None
                            ) -> tuple[web.AppRunner, int]:
    """Serve the device HTTP API for ``service`` on ``address``; writes go through ``submit``
    (the broker's group committer), then to ``mirror``. The runner and the bound port."""
    # handler_cancellation: a device that hangs up ends its long poll or upload at once.
    runner = web.AppRunner(create_device_app(service, domain, submit, mirror),
                           access_log=None, handler_cancellation=True, shutdown_timeout=10.0)
    return runner, await _serve(runner, address, "listeners.http")


def admin_hook(config: Config) -> Callable[[Any], Awaitable[Cleanup | None]]:
    """An ``on_started`` hook: the device HTTP site on ``config.listeners.http`` (devmode or
    ``--http``), then the token file and the admin site on ``config.listeners.admin``."""

    async def on_started(server: Any) -> Cleanup | None:
        service = getattr(server.hooks, "service", None)
        if service is None:
            return None
        runners: list[web.AppRunner] = []

        async def cleanup() -> None:
            for runner in reversed(runners):
                await runner.cleanup()

        try:
            http = config.listeners.http
            if http and (config.server.devmode or config.server.plain_http):
                committer = getattr(server, "committer", None)
                # The MQTT hooks own the $data/<cid>/<identity>/<alias> topics (product.md §4):
                # HTTP writes are mirrored there as MQTT writes are.
                mirror = getattr(server.hooks, "mirror_data", None)
                runner, port = await start_device_site(
                    service, http, config.server.domain,
                    committer.submit if committer is not None else None, mirror)
                runners.append(runner)
                server.device_app = runner.app  # its counters feed the admin app's /metrics
                _announce(server, "http", http, port)
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


def _announce(server: Any, name: str, address: str, port: int) -> None:
    """Log the bound port, and list it in the server's ready line."""
    log.info("%s listening on %s (port %d)", name, address, port)
    addresses = getattr(server, "addresses", None)
    if isinstance(addresses, dict):
        addresses[name] = (parse_address(address, name)[0], port)
