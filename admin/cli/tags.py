"""``fleetgate tags …``: identity tags (connector-spec §9) through the Device2 operations
``getIdentityTag``, ``addIdentityTag``, ``removeIdentityTag``, ``listTagNames``, ``listTagName``.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.cli.context import COMMON, Context, command, pairs
from admin.cli.output import Column

TAG_COLUMNS: list[Column] = [("NAME", lambda t: t.get("name")), ("VALUE", lambda t: t.get("value"))]
VALUE_COLUMNS: list[Column] = [("VALUE", lambda v: v.get("value")),
                               ("IDENTITIES", lambda v: v.get("count"))]


def register(sub: Any) -> None:
    p = sub.add_parser("tags", parents=[COMMON], help="identity tags",
                       description="Tags: name/value pairs on identities, for search.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[COMMON], help="the tags of an identity")
    ls.add_argument("identity")
    ls.add_argument("--name", help="only this tag name")
    ls.set_defaults(func=command(cmd_list))

    add = actions.add_parser("add", parents=[COMMON], help="add tags to an identity")
    add.add_argument("identity")
    add.add_argument("tags", nargs="+", metavar="NAME=VALUE")
    add.add_argument("--replace", action="store_true",
                     help="replace the existing values of the names given")
    add.set_defaults(func=command(cmd_add))

    rm = actions.add_parser("remove", parents=[COMMON],
                            help="remove tags (NAME: every value of that name)")
    rm.add_argument("identity")
    rm.add_argument("tags", nargs="+", metavar="NAME[=VALUE]")
    rm.set_defaults(func=command(cmd_remove))

    names = actions.add_parser("names", parents=[COMMON], help="tag names in use")
    names.set_defaults(func=command(cmd_names))

    values = actions.add_parser("values", parents=[COMMON],
                                help="the values of a tag name, with how many identities")
    values.add_argument("name")
    values.set_defaults(func=command(cmd_values))


def _show_tags(ctx: Context, result: Any) -> None:
    if ctx.json:
        ctx.out.json(result)
    else:
        ctx.out.table(result or [], TAG_COLUMNS)


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    call: dict[str, Any] = {"identity": args.identity}
    if args.name is not None:
        call["name"] = args.name
    _show_tags(ctx, ctx.device2("getIdentityTag", **call))
    return 0


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    given = [{"name": n, "value": v} for n, v in pairs(args.tags, "a tag NAME=VALUE")]
    _show_tags(ctx, ctx.device2("addIdentityTag", identity=args.identity, tags=given,
                                replace=args.replace))
    return 0


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    given = [{"name": n} if v is None else {"name": n, "value": v}
             for n, v in pairs(args.tags, "a tag NAME[=VALUE]", value_required=False)]
    _show_tags(ctx, ctx.device2("removeIdentityTag", identity=args.identity, tags=given))
    return 0


def cmd_names(ctx: Context, args: argparse.Namespace) -> int:
    names = ctx.device2("listTagNames")
    if ctx.json:
        ctx.out.json(names)
    else:
        for name in names or []:
            ctx.out.line(name)
    return 0


def cmd_values(ctx: Context, args: argparse.Namespace) -> int:
    values = ctx.device2("listTagName", name=args.name)
    return ctx.show(values, values or [], VALUE_COLUMNS)
