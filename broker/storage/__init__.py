"""The one storage interface of Fleetgate: named tables of ordered byte keys, used through
short read and write transactions (the shape of py-lmdb's environment and sub-databases).

Implementations: ``LmdbStore`` (the server's default) and ``MemoryStore`` (tests). A write
transaction is atomic: everything in it lands or nothing does. The broker writes through
``GroupCommitter`` (broker/storage/commit.py): one write transaction per event-loop turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class ReadTxn(Protocol):
    def get(self, table: str, key: bytes) -> bytes | None: ...

    def scan(self, table: str, prefix: bytes = b"",
             start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Pairs of ``table`` whose key starts with ``prefix``, in key order, from the first
        key ≥ ``start`` (to resume a walk in steps)."""
        ...


class WriteTxn(ReadTxn, Protocol):
    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> bool: ...


class Store(Protocol):
    def read(self) -> AbstractContextManager[ReadTxn]: ...

    def write(self) -> AbstractContextManager[WriteTxn]: ...

    def flush(self) -> None:
        """Make every committed write durable (fsync) when commits do not already do that."""
        ...

    def close(self) -> None: ...
