"""``fleetgate settings …``: the connector's settings (connector-spec §2) through the Device2
operations ``getGatewaySettings`` and ``updateGatewaySettings`` (a deep merge).

``settings show`` prints one ``key.path = value`` line per setting with the value as JSON, the
same form ``settings set`` takes: ``settings set provisioning.enabled=false name=Plant``. A
value is parsed as JSON when it is valid JSON (``false``, ``12``, ``["connect"]``,
``"007"``) and taken as text otherwise; a JSON ``null`` removes a nested key.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from admin.cli.context import COMMON, Context, UsageError, command, pairs
from admin.cli.output import flatten


def register(sub: Any) -> None:
    p = sub.add_parser("settings", parents=[COMMON], help="show or change connector settings",
                       description="Settings of a connector (provisioning, identity format, …).")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[COMMON], help="every setting")
    show.set_defaults(func=command(cmd_show))
    st = actions.add_parser("set", parents=[COMMON], help="change settings (deep merge)")
    st.add_argument("values", nargs="+", metavar="KEY.PATH=VALUE",
                    help="e.g. provisioning.auth_type=password (JSON values allowed)")
    st.set_defaults(func=command(cmd_set))


def value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def patch(items: list[tuple[str, str | None]]) -> dict[str, Any]:
    """``[("a.b", "1")]`` → ``{"a": {"b": 1}}``; the same key twice, or a key and a key inside
    it, is a usage error."""
    out: dict[str, Any] = {}
    for dotted, raw in items:
        keys = dotted.split(".")
        if any(not k for k in keys):
            raise UsageError(f"bad setting path {dotted!r}")
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise UsageError(f"{dotted!r} conflicts with another value given")
            node = child
        if keys[-1] in node:
            raise UsageError(f"{dotted!r} is given twice or conflicts with another value")
        node[keys[-1]] = value(raw or "")
    return out


def lines(settings: Any) -> list[str]:
    return [f"{key} = {json.dumps(item, ensure_ascii=False)}"
            for key, item in flatten(settings)]


def show_settings(ctx: Context, settings: Any) -> None:
    if ctx.json:
        ctx.out.json(settings)
    else:
        for text in lines(settings):
            ctx.out.line(text)


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    show_settings(ctx, ctx.device2("getGatewaySettings"))
    return 0


def cmd_set(ctx: Context, args: argparse.Namespace) -> int:
    items = pairs(args.values, "KEY.PATH=VALUE")
    ctx.device2("updateGatewaySettings", **patch(items))
    settings = ctx.device2("getGatewaySettings")
    if ctx.json:
        ctx.out.json(settings)
        return 0
    for dotted, _ in items:
        current: Any = settings
        for key in dotted.split("."):
            current = current.get(key) if isinstance(current, dict) else None
        ctx.out.line(f"{dotted} = {json.dumps(current, ensure_ascii=False)}")
    return 0
