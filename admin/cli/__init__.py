"""The ``fleetgate`` management commands (product.md §3): devices, resources, content, tags,
logs, settings, connectors and apps, each a client of the admin API (``admin.cli.client``)
found by ``admin.cli.config``. ``broker.cli`` adds them beside ``serve`` and ``passwd`` with
``register(sub)``. The package imports neither aiohttp nor the broker: a command starts fast.
"""

from __future__ import annotations

from typing import Any

from admin.cli import apps, connectors, content, devices, logs, resources, settings, tags

GROUPS = (devices, resources, content, tags, logs, settings, connectors, apps)


def register(sub: Any) -> None:
    """Add every command group to ``sub`` (the ``fleetgate`` parser's subparsers)."""
    for group in GROUPS:
        group.register(sub)
