"""``fleetgate connectors …``: the connectors one server hosts (product.md §2, §6):
``GET, POST /api/v1/connectors``, ``DELETE /api/v1/connectors/<cid>``; ``show`` prints a
connector's settings (the Device2 operation ``getGatewaySettings``).
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.client import path
from admin.cli.context import COMMON, Context, UsageError, command
from admin.cli.output import Column, when
from admin.cli.settings import show_settings

COLUMNS: list[Column] = [
    ("ID", lambda c: c.get("id")),
    ("NAME", lambda c: c.get("name")),
    ("DEFAULT", lambda c: c.get("default")),
    ("FQDN", lambda c: c.get("fqdn")),
    ("CREATED", lambda c: when(c.get("created"))),
]


def register(sub: Any) -> None:
    p = sub.add_parser("connectors", parents=[COMMON], help="list, create, remove connectors",
                       description="The connectors (tenants) this server hosts.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[COMMON], help="every connector")
    ls.set_defaults(func=command(cmd_list))

    create = actions.add_parser("create", parents=[COMMON], help="a new connector")
    create.add_argument("--name", help="display name")
    create.add_argument("--description")
    create.add_argument("--id", dest="cid", metavar="CID",
                        help="its id ([a-z0-9]{1,32}; default: 14 random characters)")
    create.add_argument("--default", action="store_true",
                        help="make it the default connector")
    create.set_defaults(func=command(cmd_create))

    show = actions.add_parser("show", parents=[COMMON], help="a connector's settings")
    show.add_argument("cid", nargs="?", metavar="CID",
                      help="default: --connector, else the default connector")
    show.set_defaults(func=command(cmd_show))

    rm = actions.add_parser("remove", parents=[COMMON],
                            help="remove a connector with all its identities and data")
    rm.add_argument("cid", metavar="CID")
    rm.add_argument("--yes", action="store_true", help="yes, remove it and all its devices")
    rm.set_defaults(func=command(cmd_remove))


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    listed = ctx.client.call("GET", path("connectors"))
    return ctx.show(listed, listed or [], COLUMNS)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    for key, given in (("name", args.name), ("description", args.description),
                       ("id", args.cid)):
        if given is not None:
            body[key] = given
    if args.default:
        body["default"] = True
    created = ctx.client.call("POST", path("connectors"), body)
    if ctx.json:
        ctx.out.json(created)
    else:
        ctx.out.line(f"created connector {created.get('id')}"
                     + (" (default)" if created.get("default") else ""))
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    cid = args.cid or ctx.connector
    show_settings(ctx, ctx.client.device2(cid, "getGatewaySettings", {}))
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageError(f"removing connector {args.cid} deletes all its identities: "
                         "add --yes to do it")
    result = ctx.client.call("DELETE", path("connectors", args.cid))
    return ctx.report(result, f"removed connector {args.cid}")
