"""A progress bar on stderr for long work (bulk import, upload, download).

Shown when stderr is a terminal, or always with ``--progress``. On a terminal the bar redraws in
place (at most ten times a second); elsewhere (a log file, a test capturing stderr) it writes one
line per whole percent reached, so the output stays readable. Without a known total it counts.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from admin.cli.output import size

WIDTH = 30
REDRAW_S = 0.1


class Progress:
    def __init__(self, label: str, total: int | None, *, unit: str = "bytes",
                 enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and _isatty(self.stream)
        self._drawn_at = 0.0
        self._percent = -1
        self._written = -1
        self._closed = False

    @classmethod
    def auto(cls, label: str, total: int | None, *, unit: str = "bytes",
             forced: bool = False) -> Progress:
        """On when stderr is a terminal or ``forced`` (``--progress``)."""
        return cls(label, total, unit=unit, enabled=forced or _isatty(sys.stderr))

    def start(self, total: int | None) -> None:
        """Set the total once it is known (a download learns it from Content-Length)."""
        self.total = total
        self._draw(force=True)

    def __call__(self, n: int) -> None:
        self.done += n
        self._draw()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._draw(force=True)
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _amount(self, n: int) -> str:
        return size(n) if self.unit == "bytes" else f"{n} {self.unit}"

    def render(self) -> str:
        if not self.total:
            return f"{self.label} {self._amount(self.done)}"
        fraction = min(self.done / self.total, 1.0)
        filled = int(WIDTH * fraction)
        if self.unit == "bytes":
            amount = f"{size(self.done)} / {size(self.total)}"
        else:
            amount = f"{self.done}/{self.total} {self.unit}"
        return f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} {amount}"

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if not force and now - self._drawn_at < REDRAW_S:
                return
            self._drawn_at = now
            self.stream.write("\r\x1b[K" + self.render())
        else:
            # One line per whole percent (per MiB, or per item, when the total is unknown);
            # forced draws (start, close) unless this very state was written already.
            if self.total:
                step = 100 * self.done // self.total
            else:
                step = self.done // (1 << 20) if self.unit == "bytes" else self.done
            if step == self._percent and (not force or self.done == self._written):
                return
            self._percent = step
            self._written = self.done
            self.stream.write(self.render() + "\n")
        self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
