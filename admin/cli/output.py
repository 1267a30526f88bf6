"""What the management commands print: aligned tables and ``key: value`` blocks for people,
the API's JSON as it came with ``--json`` (one document per command; JSON Lines for logs).
Everything goes to stdout; notes and errors go to stderr, so ``--json`` output stays parseable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

Column = tuple[str, Callable[[Mapping[str, Any]], Any]]


def text(value: Any) -> str:
    """A cell: strings as they are, nothing as ``-``, the rest as compact JSON."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def when(us: Any, *, fraction: bool = False) -> str:
    """A µs timestamp as UTC ISO 8601 (``2025-01-31T12:00:00Z``); ``-`` for none."""
    if not isinstance(us, int | float) or isinstance(us, bool) or us <= 0:
        return "-"
    moment = datetime.fromtimestamp(us / 1_000_000, UTC)
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


def tags(items: Any) -> str:
    if not isinstance(items, list) or not items:
        return "-"
    return ",".join(f"{t.get('name')}={t.get('value')}" for t in items if isinstance(t, dict))


class Output:
    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")

    def json_line(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def line(self, message: str = "") -> None:
        sys.stdout.write(message + "\n")

    def flush(self) -> None:
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """A remark for the person (counts, paging hints): stderr, never mixed with data."""
        sys.stderr.write(message + "\n")

    def table(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column]) -> None:
        cells = [[text(get(row)) for _, get in columns] for row in rows]
        headers = [name for name, _ in columns]
        widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
        for line in [headers, *cells]:
            sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                             .rstrip() + "\n")

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        pairs = list(pairs)
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            sys.stdout.write(f"{key + ':':<{width + 1}} {text(value)}\n")


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` → ``[("a.b", 1)]``; lists and empty objects stay leaves."""
    if isinstance(value, dict) and value:
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, value)]
