"""The log ring (connector-spec §8; §11 getLogs):
``GET …/logs?type=event|debug&identity&ip&since&limit``.

Entries ``{timestamp_us, identity, ip, protocol, type, connection_id, detail}``, oldest first;
``since`` (µs) keeps the entries at or after it, ``limit`` the newest ``limit`` of those. The
live streams (``…/logs/stream``, ``…/events/stream``) are ``admin.sse``'s.
"""

from __future__ import annotations

from aiohttp import web

from admin.app import reply
from admin.rest.params import PREFIX, Query, cid, service
from broker.gateway.logs import KINDS

PARAMETERS = ("type", "identity", "ip", "since", "limit")
MAX_LIMIT = 100_000


async def get_logs(request: web.Request) -> web.Response:
    query = Query(request, PARAMETERS)
    entries = service(request).getLogs(
        type=query.choice("type", KINDS) or "event", identity=query.text("identity"),
        ip=query.text("ip"), since=query.integer("since"),
        limit=query.integer("limit", 1, MAX_LIMIT), connector_id=cid(request))
    return reply(entries)


def setup(app: web.Application) -> None:
    app.router.add_get(PREFIX + "/logs", get_logs)
