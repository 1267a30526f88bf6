"""``fleetgate devices …``: identities of a connector (connector-spec §3, §11), through the
Device2 route ``POST /api/v1/connectors/<cid>/device2/<operation>``.

The device's own credential options are ``--password``, ``--device-token`` (alias ``--cik``)
and ``--certificate``: ``--token`` is the admin token of every command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from admin.cli import bulk
from admin.cli.client import ApiError, Unreachable
from admin.cli.context import COMMON, Context, UsageError, command, pairs
from admin.cli.output import Column, tags, when

STATUSES = ("whitelisted", "provisioned", "locked", "devmode", "reprovision")
SORT_FIELDS = ("identity", "status", "lastseen", "lastip", "created")
PAGE = 1000  # listIdentities' largest page, for --all
IMPORT_BATCH = 1000

LIST_COLUMNS: list[Column] = [
    ("IDENTITY", lambda d: d.get("identity")),
    ("STATUS", lambda d: d.get("status")),
    ("ONLINE", lambda d: d.get("online")),
    ("LAST IP", lambda d: d.get("lastip")),
    ("LAST SEEN", lambda d: when(d.get("lastseen"))),
    ("TAGS", lambda d: tags(d.get("tags"))),
]
STATE_COLUMNS: list[Column] = [
    ("ALIAS", lambda r: r["alias"]),
    ("REPORTED", lambda r: r.get("reported")),
    ("SET", lambda r: r.get("set")),
    ("UPDATED", lambda r: when(r.get("timestamp"))),
]
FAILED_COLUMNS: list[Column] = [
    ("LINE", lambda f: f.get("line")),
    ("IDENTITY", lambda f: f.get("identity")),
    ("ERROR", lambda f: f.get("error")),
    ("MESSAGE", lambda f: f.get("message")),
]


def register(sub: Any) -> None:
    p = sub.add_parser("devices", parents=[COMMON], help="list, add, lock, import identities",
                       description="Identities of a connector.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", parents=[COMMON], help="list identities (one page)")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--identity", metavar="GLOB", help="identity glob, e.g. 'sensor-*'")
    ls.add_argument("--ip", metavar="GLOB", help="last IP address glob")
    ls.add_argument("--tag", metavar="NAME[=VALUE]", help="only identities with this tag")
    online = ls.add_mutually_exclusive_group()
    online.add_argument("--online", action="store_true", default=None,
                        help="only devices connected now")
    online.add_argument("--offline", dest="online", action="store_false", default=None,
                        help="only devices not connected")
    ls.add_argument("--sort", metavar="FIELD",
                    help=f"sort field: {', '.join(SORT_FIELDS)} (default identity)")
    ls.add_argument("--desc", action="store_true", help="sort descending")
    ls.add_argument("--limit", type=int, help="page size (server default 100, at most 1000)")
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--all", action="store_true", help="fetch every page")
    ls.set_defaults(func=command(cmd_list))

    show = actions.add_parser("show", parents=[COMMON], help="one identity with state and tags")
    show.add_argument("identity")
    show.set_defaults(func=command(cmd_show))

    add = actions.add_parser("add", parents=[COMMON],
                             help="add an identity: whitelisted, or provisioned with a key")
    add.add_argument("identity")
    key = add.add_mutually_exclusive_group()
    key.add_argument("--password", metavar="PASSWORD",
                     help="password-mode key ('-' reads one line from stdin)")
    key.add_argument("--device-token", "--cik", dest="device_token", metavar="TOKEN",
                     help="token-mode key (the device's CIK)")
    key.add_argument("--certificate", metavar="PEM_FILE", help="client certificate (PEM)")
    add.add_argument("--locked", action="store_true", help="add it locked")
    add.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE",
                     help="a tag (repeat for more)")
    add.set_defaults(func=command(cmd_add))

    for name, handler, text_ in (
            ("remove", cmd_remove, "remove an identity (its device is disconnected)"),
            ("lock", cmd_lock, "lock an identity (its device is disconnected and refused)"),
            ("unlock", cmd_unlock, "unlock an identity"),
            ("revoke", cmd_revoke, "revoke credentials: the device must provision again"),
            ("state", cmd_state, "reported and set values of every resource")):
        q = actions.add_parser(name, parents=[COMMON], help=text_)
        q.add_argument("identity")
        q.set_defaults(func=command(handler))

    st = actions.add_parser("set", parents=[COMMON],
                            help="set values of settable resources (sent to the device)")
    st.add_argument("identity")
    st.add_argument("values", nargs="+", metavar="ALIAS=VALUE",
                    help="the value as text; the resource's format types it")
    st.set_defaults(func=command(cmd_set))

    imp = actions.add_parser("import", parents=[COMMON],
                             help="bulk-add identities from a CSV file (header ID[, tag:NAME])")
    imp.add_argument("file", metavar="FILE.csv", help="the CSV file ('-' for stdin)")
    imp.add_argument("--batch", type=int, default=IMPORT_BATCH, metavar="ROWS",
                     help=f"rows per request (default {IMPORT_BATCH})")
    imp.set_defaults(func=command(cmd_import))


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    query: dict[str, Any] = {}
    for name, value in (("status", args.status), ("identity", args.identity),
                        ("ipaddress", args.ip), ("online", args.online)):
        if value is not None:
            query[name] = value
    if args.tag:
        name, sep, value = args.tag.partition("=")
        query["tag_name"] = name
        if sep:
            query["tag_value"] = value
    if args.sort or args.desc:
        query["sort"] = ("-" if args.desc else "") + (args.sort or "identity")
    if args.limit is not None and args.limit < 0 or args.offset < 0:
        raise UsageError("--limit and --offset must not be negative")
    if args.all:
        page_size = args.limit or PAGE
        devices: list[dict[str, Any]] = []
        offset = args.offset
        while True:
            page = ctx.device2("listIdentities", limit=page_size, offset=offset, **query)
            devices.extend(page["devices"])
            offset += len(page["devices"])
            if not page.get("mayLoadMore") or not page["devices"]:
                break
        result = {"devices": devices, "total": page.get("total", len(devices)),
                  "mayLoadMore": False}
    else:
        if args.limit is not None:
            query["limit"] = args.limit
        result = ctx.device2("listIdentities", offset=args.offset, **query)
    if ctx.json:
        ctx.out.json(result)
        return 0
    ctx.out.table(result["devices"], LIST_COLUMNS)
    shown = len(result["devices"])
    total = result.get("total", shown)
    if result.get("mayLoadMore"):
        ctx.out.note(f"{args.offset + 1}-{args.offset + shown} of {total}; "
                     f"more with --offset {args.offset + shown} or --all")
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    record = ctx.device2("getIdentity", identity=args.identity)
    if ctx.json:
        ctx.out.json(record)
        return 0
    ctx.out.fields([
        ("identity", record.get("identity")), ("status", record.get("status")),
        ("auth", (record.get("auth") or {}).get("type")), ("locked", record.get("locked")),
        ("online", record.get("online")), ("devmode", record.get("devmode")),
        ("last ip", record.get("lastip")), ("last seen", when(record.get("lastseen"))),
        ("tags", tags(record.get("tags"))),
    ])
    state = record.get("state") or {}
    if state:
        ctx.out.line()
        ctx.out.table(_state_rows(state), STATE_COLUMNS)
    return 0


def cmd_add(ctx: Context, args: argparse.Namespace) -> int:
    call: dict[str, Any] = {"identity": args.identity}
    if args.password is not None:
        password = sys.stdin.readline().rstrip("\r\n") if args.password == "-" else args.password
        call["auth"] = {"type": "password", "key": password}
    elif args.device_token is not None:
        call["auth"] = {"type": "token", "key": args.device_token}
    elif args.certificate is not None:
        try:
            pem = Path(args.certificate).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the certificate {args.certificate}: {exc}") from None
        call["auth"] = {"type": "certificate", "key": pem}
    if args.locked:
        call["locked"] = True
    if args.tag:
        call["tags"] = [{"name": n, "value": v}
                        for n, v in pairs(args.tag, "a tag NAME=VALUE")]
    record = ctx.device2("addIdentity", **call)
    return ctx.report(record, f"added {record.get('identity')} ({record.get('status')})")


def cmd_remove(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.device2("removeIdentity", identity=args.identity)
    return ctx.report(result, f"removed {args.identity}")


def _update(ctx: Context, identity: str, **change: Any) -> int:
    record = ctx.device2("updateIdentity", identity=identity, **change)
    return ctx.report(record, f"{record.get('identity')}: {record.get('status')}")


def cmd_lock(ctx: Context, args: argparse.Namespace) -> int:
    return _update(ctx, args.identity, locked=True)


def cmd_unlock(ctx: Context, args: argparse.Namespace) -> int:
    return _update(ctx, args.identity, locked=False)


def cmd_revoke(ctx: Context, args: argparse.Namespace) -> int:
    # connector-spec §2.4: expire 0 revokes; the identity must provision again (reprovision).
    return _update(ctx, args.identity, auth={"expire": 0})


def _state_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(entry, alias=alias) for alias, entry in sorted(state.items())
            if isinstance(entry, dict)]


def cmd_state(ctx: Context, args: argparse.Namespace) -> int:
    state = ctx.device2("getIdentityState", identity=args.identity)
    return ctx.show(state, _state_rows(state or {}), STATE_COLUMNS)


def cmd_set(ctx: Context, args: argparse.Namespace) -> int:
    values = dict(pairs(args.values, "ALIAS=VALUE"))
    if "identity" in values:
        raise UsageError("a resource alias cannot be 'identity' here (the Device2 argument)")
    result = ctx.device2("setIdentityState", identity=args.identity, **values)
    return ctx.report(result, f"{args.identity}: set {', '.join(values)}")


def _read_csv(name: str) -> str:
    """The file's text exactly (line ends untranslated: a quoted cell keeps its CR LF)."""
    try:
        if name == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        with open(name, encoding="utf-8", newline="") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def _before(added: int, failed: list[Any]) -> str:
    return (f"before this error {added} identities were added and {len(failed)} rows "
            "failed; import the rest again: rows already added fail with conflict")


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    batches = bulk.split(_read_csv(args.file), args.batch)
    label = "import" if args.file == "-" else f"import {Path(args.file).name}"
    bar = ctx.progress(label, None, unit="rows")
    bar.start(sum(b.rows for b in batches))
    added, failed = 0, []
    try:
        for batch in batches:
            try:
                result = ctx.device2("addIdentities", identities=batch.text)
            except ApiError as exc:
                if not added and not failed:
                    raise
                raise ApiError(exc.status, exc.code,
                               f"{exc.message} ({_before(added, failed)})") from None
            except Unreachable as exc:
                if not added and not failed:
                    raise
                raise Unreachable(f"{exc} ({_before(added, failed)})") from None
            added += int(result.get("added", 0))
            for row in result.get("failed", []):
                row = dict(row)
                if isinstance(row.get("line"), int):
                    row["line"] = batch.file_line(row["line"])
                failed.append(row)
            bar(batch.rows)
    finally:
        bar.close()
    if ctx.json:
        ctx.out.json({"added": added, "failed": failed})
    else:
        noun = "identity" if added == 1 else "identities"
        ctx.out.line(f"added {added} {noun}, {len(failed)} failed")
        if failed:
            ctx.out.table(failed, FAILED_COLUMNS)
    if failed:
        ctx.out.note(f"fleetgate: {len(failed)} row{'' if len(failed) == 1 else 's'} failed")
        return 1
    return 0

