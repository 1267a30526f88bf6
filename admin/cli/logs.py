"""``fleetgate logs``: the connector's event log (or ``--debug`` log), connector-spec §8.

Without ``--follow``: the ring's entries, oldest first, through the Device2 operation
``getLogs``. With ``--follow``: the Server-Sent Events stream
``GET /api/v1/connectors/<cid>/logs/stream?type=&identity=&ip=``, printed as entries arrive,
until Ctrl-C (exit 0) or the server ends the stream (exit 3). ``--limit N`` with ``--follow``
first prints the newest N entries of the ring (the stream's ``backlog``: taken together with
the live subscription, so nothing is missed or printed twice).
``--json`` prints one JSON object per line (JSON Lines) in both modes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from admin.cli.client import path
from admin.cli.context import COMMON, UNREACHABLE, Context, UsageError, command, fail
from admin.cli.output import text, when


def register(sub: Any) -> None:
    p = sub.add_parser("logs", parents=[COMMON], help="the event or debug log (live with -f)",
                       description="The connector's event log, or its debug log.")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    p.add_argument("--debug", action="store_true",
                   help="the debug log (failures and their reasons) instead of the event log")
    p.add_argument("--identity", help="only entries of this identity")
    p.add_argument("--ip", metavar="ADDRESS", help="only entries from this IP address")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the newest N entries (with --follow: shown before the live ones)")
    p.set_defaults(func=command(cmd_logs))


def line(entry: dict[str, Any]) -> str:
    detail = entry.get("detail")
    return "  ".join([
        when(entry.get("timestamp_us"), fraction=True),
        f"{text(entry.get('type')):<20}",
        text(entry.get("identity")),
        text(entry.get("ip")),
        text(entry.get("protocol")),
        "" if detail is None else text(detail),
    ]).rstrip()


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    kind = "debug" if args.debug else "event"
    filters = {k: v for k, v in (("identity", args.identity), ("ip", args.ip)) if v is not None}
    if not args.follow:
        for entry in _ring(ctx, kind, filters, args.limit):
            _print(ctx, entry)
        return 0
    query: dict[str, Any] = {"type": kind, **filters}
    if args.limit:
        query["backlog"] = args.limit  # taken with the subscription: no gap, no repeat
    stream = ctx.client.events(path("connectors", ctx.connector, "logs", "stream"), query)
    try:
        for event in stream:
            if event.event == "overflow":
                ctx.out.note(f"fleetgate: log entries dropped, the reader fell behind: "
                             f"{_dropped(event.data)}")
                continue
            try:
                entry = json.loads(event.data)
            except ValueError:
                ctx.out.note(f"fleetgate: not a log entry: {event.data[:200]}")
                continue
            if isinstance(entry, dict):
                _print(ctx, entry)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a follow ends
    finally:
        stream.close()
    return fail("the log stream ended: the server closed it", UNREACHABLE)


def _ring(ctx: Context, kind: str, filters: dict[str, str], limit: int | None) -> list[Any]:
    call: dict[str, Any] = {"type": kind, **filters}
    if limit is not None:
        call["limit"] = limit
    return list(ctx.device2("getLogs", **call) or [])


def _dropped(data: str) -> str:
    try:
        return str(json.loads(data)["dropped"])
    except (ValueError, KeyError, TypeError):
        return data[:200]


def _print(ctx: Context, entry: Any) -> None:
    if ctx.json:
        ctx.out.json_line(entry)
    else:
        ctx.out.line(line(entry))
        ctx.out.flush()
