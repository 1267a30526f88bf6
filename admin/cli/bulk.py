"""Cutting a bulk-import CSV (connector-spec §3.5) into batches for ``addIdentities``, so an
import of any size goes in bounded requests and shows progress row by row.

Each batch is the file's header followed by a run of whole records, copied byte for byte (a
quoted certificate spanning lines stays in one batch). Records are found with the server's own
CSV dialect and line splitting, so the server's line numbers within a batch map back to the
file's: ``file line = batch line - header lines + lines before the batch``. Text the splitter
cannot parse (a CSV syntax error) goes whole into the last batch, for the server to report
with its line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Batch:
    text: str
    rows: int  # records that are not blank
    header_lines: int
    offset: int  # lines of the file before this batch's first line after the header

    def file_line(self, line: int) -> int:
        """The file's line number for the server's line number within this batch."""
        if line <= self.header_lines:
            return line
        return line - self.header_lines + self.offset


def split(text: str, rows_per_batch: int) -> list[Batch]:
    if rows_per_batch < 1:
        raise ValueError("rows_per_batch must be at least 1")
    # newline="": split lines at \n, \r\n and \r, keeping them, as the server's reader does.
    lines = io.StringIO(text, newline="").readlines()
    consumed = 0

    def feed() -> Iterator[str]:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    reader = csv.reader(feed(), skipinitialspace=True)
    try:
        next(reader)
    except (StopIteration, csv.Error):
        return [Batch(text, 0, len(lines), 0)]  # nothing to cut: the server says what is wrong
    header_lines = consumed
    header = "".join(lines[:header_lines])
    batches: list[Batch] = []
    start, rows = header_lines, 0

    def close(end: int) -> None:
        nonlocal start, rows
        body = "".join(lines[start:end])
        batches.append(Batch(header + body, rows, header_lines, start))
        start, rows = end, 0

    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            rows += 1  # the server reports the broken record as a failed row
            consumed = len(lines)
            break
        if cells and any(c.strip() for c in cells):
            rows += 1
            if rows == rows_per_batch:
                close(consumed)
    if rows or not batches:
        close(len(lines))
    return batches
