"""What every device HTTP handler shares: the application's keys, the request's connector and
connection id (set by the middleware in ``app.py``), and the reply shapes of connector-spec §6:
errors are ``text/plain; charset=utf-8`` bodies holding one token, the debug reason
(``bad_credentials``, ``locked``, ``invalid_identity``, …); data is form-encoded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from admin.device_http.forms import encode
from broker.gateway.service import Device2Service
from broker.transport.tls import TLS_INFO, TlsInfo

if TYPE_CHECKING:
    from admin.device_http.longpoll import LongPolls

# A group committer's ``submit`` (broker/storage/commit.py), or None: then writes run in a
# transaction of their own (still committed before the answer).
Submit = Callable[[Any, Any], None]
# Called with (connector id, identity, entries) after a device write is committed: the MQTT
# hooks publish the raw values on ``$data/<cid>/<identity>/<alias>`` (product.md §4).
Mirror = Callable[[str, str, list[tuple[object, Any]]], None]

SERVICE: web.AppKey[Device2Service] = web.AppKey("device_service", Device2Service)
DOMAIN: web.AppKey[str] = web.AppKey("device_domain", str)
SUBMIT: web.AppKey[Any] = web.AppKey("device_submit", object)
MIRROR: web.AppKey[Any] = web.AppKey("device_mirror", object)
POLLS: web.AppKey[LongPolls] = web.AppKey("device_polls")
# (route, status) -> requests answered, for /metrics (route: the path pattern, "unmatched").
REQUESTS: web.AppKey[Counter[tuple[str, int]]] = web.AppKey("device_requests")

# Per request, set by the middleware: the connector id (TLS SNI, else the Host header, else the
# default), and the connection id of the request's events and logs (16 random bytes, hex:
# connector-spec §1).
CONNECTOR: web.RequestKey[str] = web.RequestKey("connector", str)
CONNECTION_ID: web.RequestKey[str] = web.RequestKey("connection_id", str)

PROTOCOL = "http"
TEXT = "text/plain"
FORM_REPLY = "application/x-www-form-urlencoded; charset=utf-8"


def text(status: int, body: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=body, content_type=TEXT, charset="utf-8",
                        headers=headers or None)


def failure(status: int, code: str, message: str = "") -> web.Response:
    """An error answer: the one-token reason as a text body (``message`` is for logs)."""
    return text(status, code)


def form(pairs: list[tuple[str, str]], **headers: str) -> web.Response:
    return web.Response(status=200, body=encode(pairs).encode("ascii"),
                        headers={"Content-Type": FORM_REPLY, **headers})


def no_content() -> web.Response:
    return web.Response(status=204)


def tls_info(request: web.Request) -> TlsInfo | None:
    """The request's TLS session (SNI, client certificate), None over plain HTTP."""
    transport = request.transport
    return transport.get_extra_info(TLS_INFO) if transport is not None else None


def ctx(request: web.Request) -> dict[str, Any]:
    """The log/event context of a request: ip, protocol, connection id."""
    return {"ip": request.remote, "protocol": PROTOCOL,
            "connection_id": request[CONNECTION_ID]}
