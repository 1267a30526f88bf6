"""``fleetgate apps …``: application keys (product.md §4): MQTT credentials for the cloud side,
``GET, POST /api/v1/connectors/<cid>/apps`` and ``DELETE …/apps/<key>``. The secret is shown
once, when the key is made.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.client import path
from admin.cli.context import COMMON, Context, command
from admin.cli.output import Column, when

COLUMNS: list[Column] = [
    ("KEY", lambda a: a.get("key")),
    ("NAME", lambda a: a.get("name")),
    ("CREATED", lambda a: when(a.get("created"))),
]


def register(sub: Any) -> None:
    p = sub.add_parser("apps", parents=[COMMON], help="application keys (MQTT credentials)",
                       description="Application keys: MQTT username/password of applications.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[COMMON], help="every key (no secrets)")
    ls.set_defaults(func=command(cmd_list))
    create = actions.add_parser("create", parents=[COMMON],
                                help="a new key; its secret is shown once")
    create.add_argument("--name", default="", help="what the key is for")
    create.set_defaults(func=command(cmd_create))
    rm = actions.add_parser("remove", parents=[COMMON], help="remove a key")
    rm.add_argument("key")
    rm.set_defaults(func=command(cmd_remove))


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    listed = ctx.client.call("GET", path("connectors", ctx.connector, "apps"))
    return ctx.show(listed, listed or [], COLUMNS)


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    created = ctx.client.call("POST", path("connectors", ctx.connector, "apps"),
                              {"name": args.name})
    if ctx.json:
        ctx.out.json(created)
    else:
        ctx.out.fields([("key", created.get("key")), ("secret", created.get("secret"))])
        ctx.out.note("the secret is not shown again: keep it now")
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.client.call("DELETE", path("connectors", ctx.connector, "apps", args.key))
    return ctx.report(result, f"removed application key {args.key}")
