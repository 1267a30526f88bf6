"""``fleetgate resources …``: the connector's resource definitions (connector-spec §4.1),
through the Device2 operations ``getGatewaySettings`` and ``add/update/removeGatewayResource``.

Values on the command line are text: ``--initial`` is typed by the server like a device write;
``--allowed`` items are typed here by the resource's format (numbers or ``"9-11"`` ranges,
``true``/``false``, strings), because the definition stores them as JSON values.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from admin.cli.context import COMMON, Context, UsageError, command
from admin.cli.output import Column

FORMATS = ("string", "number", "boolean")
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

COLUMNS: list[Column] = [
    ("ALIAS", lambda r: r["alias"]),
    ("FORMAT", lambda r: r.get("format")),
    ("SETTABLE", lambda r: r.get("settable")),
    ("SYNC", lambda r: r.get("sync")),
    ("UNIT", lambda r: r.get("unit")),
    ("ALLOWED", lambda r: r.get("allowed") or None),
    ("INITIAL", lambda r: r.get("initial")),
]


def register(sub: Any) -> None:
    p = sub.add_parser("resources", parents=[COMMON], help="resource definitions",
                       description="Resource definitions (aliases) of a connector.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[COMMON], help="list the resources")
    ls.set_defaults(func=command(cmd_list))

    add = actions.add_parser("add", parents=[COMMON], help="define a resource")
    add.add_argument("alias")
    add.add_argument("--format", choices=FORMATS, default="string",
                     help="value type (default string)")
    _definition_options(add)
    add.set_defaults(func=command(cmd_add))

    up = actions.add_parser("update", parents=[COMMON], help="change a resource's definition")
    up.add_argument("alias")
    up.add_argument("--format", choices=FORMATS)
    _definition_options(up)
    up.add_argument("--no-allowed", action="store_true", help="accept any value again")
    up.add_argument("--no-initial", action="store_true", help="drop the initial value")
    up.set_defaults(func=command(cmd_update))

    rm = actions.add_parser("remove", parents=[COMMON],
                            help="remove a resource (every device's values for it go too)")
    rm.add_argument("alias")
    rm.set_defaults(func=command(cmd_remove))


def _definition_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settable", action=argparse.BooleanOptionalAction, default=None,
                   help="the cloud may set it (setIdentityState)")
    p.add_argument("--sync", action=argparse.BooleanOptionalAction, default=None,
                   help="a set value waits for the device's acknowledgement (default yes)")
    p.add_argument("--unit", help="informational unit")
    p.add_argument("--allowed", action="extend", nargs="+", metavar="VALUE",
                   help="the only values accepted (numbers also as ranges like 9-11)")
    p.add_argument("--initial", metavar="VALUE",
                   help="the set value of new identities (settable resources only)")


def typed_allowed(fmt: str, items: list[str]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if fmt == "number":
            try:
                value = json.loads(item)
            except ValueError:
                value = item  # a range such as "9-11"; the server checks it
            out.append(value if isinstance(value, int | float)
                       and not isinstance(value, bool) else item)
        elif fmt == "boolean":
            if item.lower() not in BOOLEANS:
                raise UsageError(f"--allowed {item!r} is not a boolean (true/false)")
            out.append(BOOLEANS[item.lower()])
        else:
            out.append(item)
    return out


def _changes(args: argparse.Namespace, fmt: str | None) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.format is not None:
        changes["format"] = args.format
    for name in ("settable", "sync", "unit", "initial"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = value
    if args.allowed is not None:
        changes["allowed"] = typed_allowed(fmt or "string", args.allowed)
    return changes


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    resources = ctx.device2("getGatewaySettings").get("resources") or {}
    return ctx.show(resources, [dict(d, alias=a) for a, d in sorted(resources.items())], COLUMNS)


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.device2("addGatewayResource", alias=args.alias, **_changes(args, args.format))
    return ctx.report(result, f"added resource {args.alias}")


def cmd_update(ctx: Context, args: argparse.Namespace) -> int:
    if args.no_allowed and args.allowed is not None:
        raise UsageError("give --allowed or --no-allowed, not both")
    if args.no_initial and args.initial is not None:
        raise UsageError("give --initial or --no-initial, not both")
    fmt = args.format
    if fmt is None and args.allowed is not None:
        fmt = ctx.device2("getGatewayResource", alias=args.alias).get("format")
    changes = _changes(args, fmt)
    if args.no_allowed:
        changes["allowed"] = []
    if args.no_initial:
        changes["initial"] = None
    if not changes:
        raise UsageError("nothing to change: give --format, --settable, --allowed, …")
    result = ctx.device2("updateGatewayResource", alias=args.alias, **changes)
    return ctx.report(result, f"updated resource {args.alias}")


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.device2("removeGatewayResource", alias=args.alias)
    return ctx.report(result, f"removed resource {args.alias}")
