"""Starts the admin API next to the broker: the ``on_started`` hook ``broker.cli`` hands to
``broker.transport.server.run`` (the core never imports this package)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from admin.app import create_app
from admin.token import load_or_create_token
from broker.config import Config, parse_address

log = logging.getLogger(__name__)

Cleanup = Callable[[], Awaitable[None]]


async def start_site(service: Any, token: str, address: str,
                     server: Any = None) -> tuple[web.AppRunner, int]:
    """Serve the admin app for ``service`` on ``address``; the runner and the bound port."""
    host, port = parse_address(address, "listeners.admin")
    runner = web.AppRunner(create_app(service, token, server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = port
    server = site._server  # aiohttp has no public accessor for the bound port
    if server is not None and getattr(server, "sockets", None):
        bound = server.sockets[0].getsockname()[1]
    return runner, bound


def admin_hook(config: Config) -> Callable[[Any], Awaitable[Cleanup | None]]:
    """An ``on_started`` hook: token file, then the admin site on ``config.listeners.admin``."""

    async def on_started(server: Any) -> Cleanup | None:
        address = config.listeners.admin
        service = getattr(server.hooks, "service", None)
        if not address or service is None:
            return None
        token, created = load_or_create_token(config.server.data)
        if created:
            print(f"fleetgate admin token (shown once, kept in {config.server.data}/admin.token):"
                  f" {token}", flush=True)
        runner, port = await start_site(service, token, address, server)
        log.info("admin listening on %s (port %d)", address, port)
        return runner.cleanup

    return on_started
