"""What every REST handler reads from a request: the service, the connector id and other path
parts, a JSON object body with known fields only, and validated query parameters.

Query values are text; each is checked here, so a bad one is 400 ``bad_request`` naming the
parameter (``?limit=ten`` → "limit must be an integer 0..1000"), and a parameter the route
does not know is 400 too (a typo must not silently widen a listing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from admin.app import SERVICE_KEY, _json_object
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service

PREFIX = "/api/v1/connectors/{cid}"
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def service(request: web.Request) -> Device2Service:
    return request.app[SERVICE_KEY]


def cid(request: web.Request) -> str:
    return request.match_info["cid"]


async def body(request: web.Request, allowed: Iterable[str] | None = None,
               where: str = "body") -> dict[str, Any]:
    """The JSON object body (empty = ``{}``); with ``allowed``, other fields are 400."""
    value = await _json_object(request)
    if allowed is not None:
        unknown = set(value) - set(allowed)
        if unknown:
            raise bad(f"{where}: unknown fields {sorted(unknown)}")
    return value


def same(value: object, path_value: str, name: str) -> None:
    """A body may repeat the path's ``name`` only with the same value."""
    if value is not None and value != path_value:
        raise bad(f"{name} {value!r} in the body differs from {path_value!r} in the path")


class Query:
    """The query parameters of one request, checked against the names the route knows."""

    def __init__(self, request: web.Request, known: Iterable[str]) -> None:
        self.values = request.query
        names = set(known)
        unknown = sorted(set(self.values) - names)
        if unknown:
            raise bad(f"unknown query parameters {unknown}; this route takes "
                      f"{', '.join(sorted(names)) or 'none'}")
        for name in set(self.values):
            if len(self.values.getall(name)) > 1:
                raise bad(f"query parameter {name} given more than once")

    def text(self, name: str) -> str | None:
        return self.values.get(name)

    def integer(self, name: str, low: int = 0, high: int | None = None) -> int | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        if not _INTEGER.fullmatch(raw):
            raise bad(f"{name} must be an integer {bounds}")
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise bad(f"{name} must be an integer {bounds}")
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        if raw not in ("true", "false", "1", "0"):
            raise bad(f"{name} must be true or false")
        return raw in ("true", "1")

    def choice(self, name: str, choices: Iterable[str]) -> str | None:
        raw = self.values.get(name)
        options = tuple(choices)
        if raw is not None and raw not in options:
            raise bad(f"{name} must be one of {', '.join(options)}")
        return raw
