"""``fleetgate content …``: the connector's content store (connector-spec §7) through the REST
routes ``GET …/content`` (list), ``PUT …/content/<id>`` (the file as the raw body,
``Content-Type`` its MIME type, ``X-Content-Meta`` its meta text), ``GET …/content/<id>``
(download) and ``DELETE …/content/<id>``. Bodies stream in 64 KiB pieces both ways (no file is
held in memory) with a progress bar; a download goes to ``FILE.part`` and is renamed to
``FILE`` only once complete.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

from admin.cli.client import path
from admin.cli.context import COMMON, Context, UsageError, command
from admin.cli.output import Column, size, when

COLUMNS: list[Column] = [
    ("ID", lambda c: c.get("id")),
    ("TYPE", lambda c: c.get("type")),
    ("SIZE", lambda c: size(c["length"]) if isinstance(c.get("length"), int) else None),
    ("UPDATED", lambda c: when(c.get("updated"))),
    ("META", lambda c: c.get("meta")),
]


def register(sub: Any) -> None:
    p = sub.add_parser("content", parents=[COMMON], help="files devices download",
                       description="The content store: files (firmware, configuration) for "
                                   "devices.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[COMMON], help="every item")
    ls.set_defaults(func=command(cmd_list))

    up = actions.add_parser("upload", parents=[COMMON], help="upload a file (replaces the id)")
    up.add_argument("file")
    up.add_argument("--id", dest="content_id", help="content id (default: the file's name)")
    up.add_argument("--type", help="MIME type (default: guessed from the name, else "
                                   "application/octet-stream)")
    up.add_argument("--meta", help="free text kept with the item (printable ASCII)")
    up.set_defaults(func=command(cmd_upload))

    down = actions.add_parser("download", parents=[COMMON], help="download an item")
    down.add_argument("content_id", metavar="ID")
    down.add_argument("-o", "--output", metavar="FILE",
                      help="where to write it ('-': stdout; default: ./ID)")
    down.set_defaults(func=command(cmd_download))

    rm = actions.add_parser("delete", parents=[COMMON], help="delete an item")
    rm.add_argument("content_id", metavar="ID")
    rm.set_defaults(func=command(cmd_delete))


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    listed = ctx.client.call("GET", path("connectors", ctx.connector, "content"))
    return ctx.show(listed, listed or [], COLUMNS)


def cmd_upload(ctx: Context, args: argparse.Namespace) -> int:
    source = Path(args.file)
    try:
        length = source.stat().st_size
        handle = source.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    content_id = args.content_id or source.name
    kind = args.type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    headers = {"Content-Type": kind}
    if args.meta is not None:
        if not all(" " <= ch <= "~" for ch in args.meta):
            raise UsageError("--meta must be printable ASCII (it travels in an HTTP header)")
        headers["X-Content-Meta"] = args.meta
    bar = ctx.progress(f"upload {content_id}", None)
    bar.start(length)
    try:
        with handle:
            info = ctx.client.upload("PUT", path("connectors", ctx.connector, "content",
                                                 content_id), handle, length, headers, bar)
    finally:
        bar.close()
    return ctx.report(info, f"uploaded {content_id} ({size(length)}, {kind})")


def _default_name(content_id: str) -> str:
    if content_id in ("", ".", "..") or os.sep in content_id or "\0" in content_id or (
            os.altsep and os.altsep in content_id):
        raise UsageError(f"{content_id!r} is not a usable file name: give -o FILE")
    return content_id


def cmd_download(ctx: Context, args: argparse.Namespace) -> int:
    target = args.output or _default_name(args.content_id)
    route = path("connectors", ctx.connector, "content", args.content_id)
    bar = ctx.progress(f"download {args.content_id}", None)
    if target == "-":
        try:
            written = ctx.client.download(route, sys.stdout.buffer, bar.start, bar)
            sys.stdout.buffer.flush()
        finally:
            bar.close()
        return 0
    partial = Path(target + ".part")
    try:
        with partial.open("wb") as sink:
            written = ctx.client.download(route, sink, bar.start, bar)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return ctx.report({"id": args.content_id, "file": target, "length": written},
                      f"downloaded {args.content_id} to {target} ({size(written)})")


def cmd_delete(ctx: Context, args: argparse.Namespace) -> int:
    result = ctx.client.call("DELETE", path("connectors", ctx.connector, "content",
                                            args.content_id))
    return ctx.report(result, f"deleted {args.content_id}")
