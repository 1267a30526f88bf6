"""What every management command shares: the common options, the ``Context`` a command runs
with (client, output, connector, progress), and the mapping of failures to exit codes.

Exit codes: 0 success; 1 the API answered an error (or some rows of a bulk import failed);
2 usage (bad arguments, no token or URL found, a local file that cannot be read or written);
3 the admin API cannot be reached; 130 interrupted by Ctrl-C (``logs --follow`` ends with 0).
Every failure prints one line on stderr: ``fleetgate: 404 not_found: identity 'x' not found``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from admin.cli.client import ApiError, Client, Unreachable, path
from admin.cli.config import resolve
from admin.cli.output import Output
from admin.cli.progress import Progress
from broker.config import ConfigError

OK, API_ERROR, USAGE, UNREACHABLE = 0, 1, 2, 3
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class UsageError(Exception):
    """Arguments argparse accepted but the command cannot use (``alias=value`` without ``=``)."""


def common_options() -> argparse.ArgumentParser:
    """The options of every management command, accepted before or after the action
    (``fleetgate devices --json list`` = ``fleetgate devices list --json``). SUPPRESS keeps an
    option given at the group level from being reset by the action parser's default."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("admin API")
    g.add_argument("--url", default=argparse.SUPPRESS,
                   help="admin API URL (default: $FLEETGATE_URL, else listeners.admin)")
    g.add_argument("--token", default=argparse.SUPPRESS,
                   help="admin bearer token (default: $FLEETGATE_TOKEN, else <data>/admin.token)")
    g.add_argument("--data", default=argparse.SUPPRESS, metavar="DIR",
                   help="data directory holding admin.token (default: server.data, ./data)")
    g.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                   help="the server's TOML configuration (for listeners.admin, server.data)")
    g.add_argument("--connector", default=argparse.SUPPRESS, metavar="CID",
                   help="connector id (default: the default connector)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print the API's JSON instead of tables")
    g.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                   help="show progress on stderr even when it is not a terminal")
    return p


COMMON = common_options()


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Output(bool(getattr(args, "json", False)))
        self.forced_progress = bool(getattr(args, "progress", False))
        self._client: Client | None = None
        self._connector: str | None = getattr(args, "connector", None)

    @property
    def json(self) -> bool:
        return self.out.json_mode

    def show(self, result: Any, rows: Any, columns: Any) -> int:
        """The API's answer with ``--json``, else ``rows`` as a table; exit code 0."""
        if self.json:
            self.out.json(result)
        else:
            self.out.table(rows, columns)
        return 0

    def report(self, result: Any, message: str) -> int:
        """The API's answer with ``--json``, else a one-line summary; exit code 0."""
        if self.json:
            self.out.json(result)
        else:
            self.out.line(message)
        return 0

    @property
    def client(self) -> Client:
        if self._client is None:
            a = self.args
            target = resolve(url=getattr(a, "url", None), token=getattr(a, "token", None),
                             data=getattr(a, "data", None), config=getattr(a, "config", None))
            try:
                self._client = Client(target.url, target.token)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        return self._client

    @property
    def connector(self) -> str:
        """``--connector``, else the connector ``GET /api/v1/connectors`` marks default."""
        if self._connector is None:
            listed = self.client.call("GET", path("connectors"))
            for item in listed if isinstance(listed, list) else []:
                if isinstance(item, dict) and item.get("default"):
                    self._connector = str(item["id"])
                    break
            else:
                raise ApiError(404, "not_found", "no default connector: give --connector")
        return self._connector

    def device2(self, operation: str, **args: Any) -> Any:
        return self.client.device2(self.connector, operation, args)

    def progress(self, label: str, total: int | None, unit: str = "bytes") -> Progress:
        return Progress.auto(label, total, unit=unit, forced=self.forced_progress)


Handler = Callable[[Context, argparse.Namespace], int | None]


def command(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """``func`` for ``set_defaults``: run ``handler`` and turn failures into one line on stderr
    and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(Context(args), args) or OK)
        except ApiError as exc:
            return fail(str(exc), API_ERROR)
        except Unreachable as exc:
            return fail(str(exc), UNREACHABLE)
        except (UsageError, ConfigError) as exc:
            return fail(str(exc), USAGE)
        except KeyboardInterrupt:
            return fail("interrupted", INTERRUPTED)
        except BrokenPipeError:
            # `fleetgate devices list | head`: the reader left. Point stdout at /dev/null so
            # the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return OK

    run.__name__ = handler.__name__
    return run


def fail(message: str, code: int) -> int:
    sys.stderr.write(f"fleetgate: {message}\n")
    return code


def pairs(items: list[str], what: str, *,
          value_required: bool = True) -> list[tuple[str, str | None]]:
    """``name=value`` arguments split at the first ``=``; a bare ``name`` gives
    ``(name, None)`` where ``value_required`` is off, and a usage error otherwise."""
    out: list[tuple[str, str | None]] = []
    for item in items:
        name, sep, value = item.partition("=")
        if not name or (value_required and not sep):
            raise UsageError(f"expected {what}, got {item!r}")
        out.append((name, value if sep else None))
    return out
