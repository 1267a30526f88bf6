"""The bulk provisioning CSV (connector-spec §3.5), parsed as it arrives.

The first record is the header: ``ID`` [, ``SSL Client Certificate``] [, ``tag:<name>`` …]
(names case-insensitive, spaces after commas ignored). Then one identity per record; the
certificate cell is a quoted PEM whose newlines are kept, so a record may span lines; a tag cell
may hold several values separated by ``|``. Lines are counted from 1 (the header); a row's line
is the line where its record starts. Valid::

    ID, SSL Client Certificate, tag:site
    dev1,,Lyon|Paris

A bad header (first column not ``ID``, an unknown column) refuses the whole input (400); a bad
row (more cells than columns) is a ``Row`` carrying its error, and the rows after it still count.
A CSV syntax error, bytes that are not UTF-8, or a record left open at the end (an unclosed
quote) end the input there: one error row, the rest is not read.

``CsvRows`` is sans-I/O, like the MQTT codec: bytes in (``feed``), rows out, so a body of any
size is parsed chunk by chunk in bounded memory. The csv module cannot resume a record cut
between two feeds, so when a record runs past the lines received so far its partial result is
dropped and the record is parsed again, whole, once more lines have come (a record is at most
``MAX_RECORD`` characters; csv's own field limit, 128 KiB, usually says so first).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from broker.gateway import tags
from broker.gateway.errors import ServiceError

CSV_ID = "id"
CSV_CERT = "ssl client certificate"
TAG_PREFIX = "tag:"
MAX_RECORD = 1 << 20  # characters of one record (a certificate chain fits many times over)

# (line, identity, tags, certificate, error): what one row asks for, not yet validated
# against the connector; ``error`` is set when the row itself is malformed.
Row = tuple[int, Any, list[dict[str, str]], str | None, str | None]

_LINE_END = re.compile(r"\r\n|\r|\n")


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


class Columns:
    """The header: where the certificate and the tag columns are."""

    def __init__(self, cells: list[str]) -> None:
        names = [c.strip() for c in cells]
        if not names or names[0].lower() != CSV_ID:
            raise _bad("the first CSV column must be ID")
        self.count = len(names)
        self.cert: int | None = None
        self.tags: dict[int, str] = {}
        for i, name in enumerate(names[1:], 1):
            if name.lower() == CSV_CERT and self.cert is None:
                self.cert = i
            elif name.lower().startswith(TAG_PREFIX) and name[len(TAG_PREFIX):].strip():
                self.tags[i] = tags.validate_name(name[len(TAG_PREFIX):].strip())
            else:
                raise _bad(f"unknown CSV column {name!r}")

    def row(self, line: int, cells: list[str]) -> Row | None:
        """The row of one record; None for a blank record (skipped)."""
        if not cells or all(not c.strip() for c in cells):
            return None
        error = None
        if len(cells) > self.count:
            error = f"{len(cells)} cells for {self.count} columns"
        cert = None
        if self.cert is not None and self.cert < len(cells) and cells[self.cert].strip():
            cert = cells[self.cert].strip()
        row_tags = [{"name": name, "value": v.strip()}
                    for i, name in self.tags.items() if i < len(cells)
                    for v in cells[i].split("|") if v.strip()]
        return line, cells[0].strip(), row_tags, cert, error


class _Lines:
    """The csv reader's input: the complete lines received and not yet parsed. It notes the
    lines each record took, and whether the reader asked for a line it did not have."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.taken: list[str] = []
        self.starved = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.queue:
            self.starved = True
            raise StopIteration
        line = self.queue.popleft()
        self.taken.append(line)
        return line


class CsvRows:
    """Incremental parser: ``feed(chunk)`` and ``close()`` return the rows completed so far.
    The header is parsed first (a bad one raises ServiceError 400); ``columns`` is None until
    then. After a syntax error ``done`` is set and further input is ignored."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._tail = ""  # text after the last line end (a "\r" waits: "\r\n" may follow)
        self._lines = _Lines()
        self._reader = self._new_reader()
        self._line = 1  # the line the next record starts at
        self._first = True
        self.columns: Columns | None = None
        self.done = False

    def _new_reader(self) -> Iterator[list[str]]:
        return csv.reader(self._lines, skipinitialspace=True)

    def feed(self, data: bytes) -> list[Row]:
        if self.done:
            return []
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            # The records before the bad bytes still count.
            rows = self.feed_text(bytes(exc.object[:exc.start]).decode("utf-8"))
            if self.done:
                return rows
            return rows + self._stop(f"the CSV is not UTF-8 text ({exc.reason})")
        return self.feed_text(text)

    def feed_text(self, text: str) -> list[Row]:
        if self.done:
            return []
        text = self._tail + text
        if self._first:
            if not text:
                return []
            text = text.removeprefix("\ufeff")
            self._first = False
        pos = 0
        queue = self._lines.queue
        for end in _LINE_END.finditer(text):
            if end.group() == "\r" and end.end() == len(text):
                break  # the next chunk may begin with the "\n" of this "\r\n"
            queue.append(text[pos:end.end()])
            pos = end.end()
        self._tail = text[pos:]
        rows = self._parse(final=False)
        if len(self._tail) > MAX_RECORD and not self.done:  # no line end in sight
            self._tail = ""
            rows += self._stop(f"CSV syntax: a line longer than {MAX_RECORD} characters")
        return rows

    def close(self) -> list[Row]:
        """The end of the input: the last line (without a line end) and any open record."""
        if self.done:
            return []
        try:
            rest = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return self._stop(f"the CSV is not UTF-8 text ({exc.reason})")
        text = self._tail + rest
        self._tail = ""
        if self._first:
            text = text.removeprefix("\ufeff")
        if text:
            self._lines.queue.append(text)
        rows = self._parse(final=True)
        if self.columns is None and not self.done:
            raise _bad("empty CSV: the first line must be the header ID")
        self.done = True
        return rows

    def _stop(self, message: str) -> list[Row]:
        self.done = True
        if self.columns is None:
            raise _bad(message)
        return [(self._line, None, [], None, message + "; the rest of the input was not read")]

    def _parse(self, *, final: bool) -> list[Row]:
        rows: list[Row] = []
        lines = self._lines
        while lines.queue and not self.done:
            lines.taken = []
            lines.starved = False
            try:
                cells = next(self._reader)
            except csv.Error as exc:
                if self.columns is None:
                    raise _bad(f"CSV header: {exc}") from exc
                return rows + self._stop(f"CSV syntax: {exc}")
            if lines.starved:
                # The record goes on past the lines received: parse it again, whole, later.
                if final:
                    return rows + self._stop("CSV syntax: unexpected end of data "
                                             "(a quoted cell is not closed)")
                lines.queue.extendleft(reversed(lines.taken))
                self._reader = self._new_reader()
                if sum(len(t) for t in lines.taken) > MAX_RECORD:
                    return rows + self._stop(f"CSV syntax: a record longer than {MAX_RECORD} "
                                             "characters (is a quote not closed?)")
                break
            start = self._line
            self._line += len(lines.taken)
            if self.columns is None:
                self.columns = Columns(cells)
                continue
            row = self.columns.row(start, cells)
            if row is not None:
                rows.append(row)
        return rows


def parse_csv(text: str) -> list[Row]:
    """Every row of a whole CSV text (addIdentities with ``identities`` as a string)."""
    parser = CsvRows()
    return parser.feed_text(text) + parser.close()


def row_from_item(index: int, item: object) -> Row:
    """A row of addIdentities' list form: an identity, or ``{identity, tags, certificate}``."""
    if isinstance(item, str):
        return index, item, [], None, None
    if isinstance(item, Mapping):
        unknown = set(item) - {"identity", "tags", "certificate"}
        error = f"unknown fields {sorted(unknown)}" if unknown else None
        return (index, item.get("identity"), item.get("tags") or [], item.get("certificate"),
                error)
    return index, None, [], None, "each item is an identity or {identity, tags}"
