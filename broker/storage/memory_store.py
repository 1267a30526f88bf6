"""In-memory ``Store``: the reference implementation of the storage contract.

Writes go to a private copy-on-write overlay and land only when the transaction's block ends
without an exception, so it is atomic like the LMDB store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from contextlib import contextmanager

from broker.storage.overlay import OverlayTxn


class _Table:
    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: list[bytes] = []  # sorted
        self.values: dict[bytes, bytes] = {}


class MemoryReadTxn:
    def __init__(self, tables: dict[str, _Table]) -> None:
        self._tables = tables

    def get(self, table: str, key: bytes) -> bytes | None:
        t = self._tables.get(table)
        return None if t is None else t.values.get(key)

    def scan(self, table: str, prefix: bytes = b"",
             start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        t = self._tables.get(table)
        if t is None:
            return
        keys = t.keys
        i = bisect.bisect_left(keys, max(prefix, start))
        while i < len(keys) and keys[i].startswith(prefix):
            key = keys[i]
            yield key, t.values[key]
            i += 1


class MemoryWriteTxn(OverlayTxn):
    def __init__(self, tables: dict[str, _Table]) -> None:
        base = MemoryReadTxn(tables)
        super().__init__(base.get, base.scan)
        self._tables = tables

    def commit(self) -> None:
        for (table, key), value in self.pending.items():
            t = self._tables.setdefault(table, _Table())
            if value is None:
                if t.values.pop(key, None) is not None:
                    t.keys.pop(bisect.bisect_left(t.keys, key))
            else:
                if key not in t.values:
                    bisect.insort(t.keys, key)
                t.values[key] = value


class MemoryStore:
    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}
        self.commits = 0

    @contextmanager
    def read(self) -> Iterator[MemoryReadTxn]:
        yield MemoryReadTxn(self._tables)

    @contextmanager
    def write(self) -> Iterator[MemoryWriteTxn]:
        txn = MemoryWriteTxn(self._tables)
        yield txn
        txn.commit()
        self.commits += 1

    def flush(self) -> None:
        pass  # nothing is ever on disk

    def close(self) -> None:
        self._tables.clear()
