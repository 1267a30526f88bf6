"""Where the management commands find the admin API and its bearer token.

URL, first found wins: ``--url``, ``$FLEETGATE_URL``, ``listeners.admin`` of the ``--config``
file, the default ``127.0.0.1:8081``. A wildcard bind address (``0.0.0.0``, ``::``) is reached
on loopback.
Token: ``--token``, ``$FLEETGATE_TOKEN``, ``<data>/admin.token`` where the data directory is
``--data``, else the config file's ``server.data``, else ``./data`` (as ``fleetgate serve``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from admin.token import TOKEN_FILE
from broker.config import ConfigError, load, parse_address

URL_ENV = "FLEETGATE_URL"
TOKEN_ENV = "FLEETGATE_TOKEN"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


@dataclass
class Target:
    url: str
    token: str


def admin_url(address: str) -> str:
    """``http://HOST:PORT`` for a ``listeners.admin`` value."""
    host, port = parse_address(address, "listeners.admin")
    host = WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def resolve(*, url: str | None = None, token: str | None = None, data: str | None = None,
            config: str | None = None, environ: Mapping[str, str] = os.environ) -> Target:
    """The admin API to talk to; ``ConfigError`` (a usage error) when it cannot be found."""
    url = url or environ.get(URL_ENV) or None
    token = token or environ.get(TOKEN_ENV) or None
    if url is not None and token is not None:
        return Target(url, token)  # nothing to read: a bad config file must not get in the way
    loaded = load(config)
    if url is None:
        if not loaded.listeners.admin:
            raise ConfigError("listeners.admin is off in the configuration: give --url")
        url = admin_url(loaded.listeners.admin)
    if token is None:
        path = Path(data or loaded.server.data) / TOKEN_FILE
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"no admin token: give --token or set {TOKEN_ENV}, or --data DIR holding "
                f"{TOKEN_FILE} (cannot read {path}: {exc.strerror})") from None
        if not token:
            raise ConfigError(f"{path} is empty")
    return Target(url, token)
