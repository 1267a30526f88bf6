"""The LMDB ``Store`` (py-lmdb): one environment, one named sub-database per table.

- Keys are ordered bytewise (LMDB's default), so ``scan(prefix)`` is one cursor walk.
- A write transaction buffers its puts and deletes (reading its own writes) and applies them in
  one real LMDB write transaction when its block ends; if the block raises nothing is applied.
  Buffering is what lets a full map be grown and the same writes applied again: a growing fleet
  never sees ``MapFullError``.
- Read transactions are short (one ``with`` block); a long reader would pin old pages.
- Keys of any length: LMDB keys hold at most 511 bytes, but a topic name or a client id may be
  far longer (MQTT allows 65,535 bytes). A key of ``LONG_KEY`` bytes or more is stored as its
  first ``KEPT`` bytes plus its SHA-256 (exactly ``LONG_KEY`` bytes: shorter keys never have
  that length), the whole key kept in front of the value; reads, deletes and scans undo it, so
  callers only ever see their own keys. Prefix scans work for prefixes of any length; key order
  is kept except among long keys sharing their first ``KEPT`` bytes (ordered by hash).
- ``sync``: ``always`` fsyncs every commit before ``write()`` returns; ``batch`` and ``none``
  commit without fsync (``flush()`` fsyncs; the server calls it once a second in ``batch``).
  Either way a commit is in the OS page cache, so a process crash loses nothing; only a machine
  crash or power loss can take the unsynced commits (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from broker.storage.overlay import OverlayTxn

log = logging.getLogger("fleetgate.storage")

SYNC_MODES = ("always", "batch", "none")
DEFAULT_MAP_SIZE = 64 * 1024 * 1024
MAX_TABLES = 64
LONG_KEY = 481  # stored length of a long key: KEPT bytes + a 32-byte SHA-256
KEPT = LONG_KEY - 32
_KEY_LENGTH = struct.Struct(">I")


def stored_key(key: bytes) -> bytes:
    if len(key) < LONG_KEY:
        return key
    return key[:KEPT] + hashlib.sha256(key).digest()


def stored_value(key: bytes, value: bytes) -> bytes:
    if len(key) < LONG_KEY:
        return value
    return _KEY_LENGTH.pack(len(key)) + key + value


def _unpack(raw: bytes) -> tuple[bytes, bytes]:
    """(the whole key, the value) of a long key's stored value."""
    (length,) = _KEY_LENGTH.unpack_from(raw)
    end = _KEY_LENGTH.size + length
    return raw[_KEY_LENGTH.size:end], raw[end:]


class LmdbReadTxn:
    def __init__(self, store: LmdbStore, txn: Any) -> None:
        self._store = store
        self._txn = txn

    # A table created after this transaction began is not in its snapshot: LMDB answers
    # "invalid argument" for its handle, which here means the table is empty.

    def get(self, table: str, key: bytes) -> bytes | None:
        db = self._store._dbs.get(table)
        if db is None:
            return None
        try:
            raw: bytes | None = self._txn.get(stored_key(key), db=db)
        except lmdb.InvalidParameterError:
            return None
        if raw is None or len(key) < LONG_KEY:
            return raw
        whole, value = _unpack(raw)
        return value if whole == key else None

    def scan(self, table: str, prefix: bytes = b"",
             start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        db = self._store._dbs.get(table)
        if db is None:
            return
        try:
            cursor = self._txn.cursor(db=db)
        except lmdb.InvalidParameterError:
            return
        first = stored_key(max(prefix, start))
        near = prefix[:KEPT]  # what the stored keys under ``prefix`` all start with
        with cursor:
            if not cursor.set_range(first[:KEPT] if len(first) >= LONG_KEY else first):
                return
            for key, value in cursor.iternext():
                if not key.startswith(near):
                    return
                if len(key) == LONG_KEY:
                    key, value = _unpack(value)
                if key.startswith(prefix) and key >= start:
                    yield key, value


class LmdbWriteTxn(OverlayTxn):
    """Buffered writes over a lazily opened read transaction (closed before the commit)."""

    def __init__(self, store: LmdbStore) -> None:
        super().__init__(lambda t, k: self._read().get(t, k),
                         lambda t, p, s: self._read().scan(t, p, s))
        self._store = store
        self._reader: Any = None

    def _read(self) -> LmdbReadTxn:
        if self._reader is None:
            self._reader = self._store._begin_read()
        return LmdbReadTxn(self._store, self._reader)

    def _end_read(self) -> None:
        if self._reader is not None:
            self._reader.abort()
            self._reader = None
            self._store._resize_lock.release()


class LmdbStore:
    def __init__(self, path: str | Path, *, sync: str = "always",
                 map_size: int = DEFAULT_MAP_SIZE) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        # metasync=False with sync=True is still durable (LMDB fsyncs data and meta together
        # at commit); ``none`` never fsyncs on commit.
        self.env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=MAX_TABLES, subdir=True, lock=True,
            sync=sync == "always", metasync=sync == "always", readahead=False,
        )
        with self.env.begin() as txn:  # named databases are the keys of the main one
            names = [key for key, _ in txn.cursor()]
        self._dbs: dict[str, Any] = {name.decode(): self.env.open_db(name) for name in names}
        self._db_lock = threading.Lock()
        # set_mapsize needs no transaction open in this process: readers hold this lock (they
        # are short), the grower takes it between two write attempts.
        self._resize_lock = threading.Lock()
        # One writer at a time in this process, so a growth never happens under another
        # thread's write transaction (LMDB's own writer mutex is per environment, not per map).
        self._write_lock = threading.Lock()
        self.commits = 0
        self.map_grown = 0

    # -- tables ---------------------------------------------------------------------------

    def _db(self, table: str) -> Any:
        """The table's sub-database, created (in its own committed transaction) on first use."""
        db = self._dbs.get(table)
        if db is None:
            with self._db_lock:
                db = self._dbs.get(table)
                if db is None:
                    db = self._dbs[table] = self.env.open_db(table.encode(), create=True)
        return db

    # -- transactions ---------------------------------------------------------------------

    def _begin_read(self) -> Any:
        self._resize_lock.acquire()
        try:
            return self.env.begin(buffers=False)
        except BaseException:
            self._resize_lock.release()
            raise

    @contextmanager
    def read(self) -> Iterator[LmdbReadTxn]:
        txn = self._begin_read()
        try:
            yield LmdbReadTxn(self, txn)
        finally:
            txn.abort()
            self._resize_lock.release()

    @contextmanager
    def write(self) -> Iterator[LmdbWriteTxn]:
        txn = LmdbWriteTxn(self)
        try:
            yield txn
        finally:
            txn._end_read()
        if txn.pending:
            self.apply(txn.pending)

    def apply(self, ops: Mapping[tuple[str, bytes], bytes | None]) -> None:
        """Commit ready-made puts (bytes) and deletes (None) in one write transaction; the
        group committer's writer thread uses it to skip a transaction object per batch."""
        # Open every table first: open_db inside our own write transaction would nest one.
        dbs = {table: self._db(table) for table, _ in ops}
        with self._write_lock:
            self._apply_locked(ops, dbs)

    def _apply_locked(self, ops: Mapping[tuple[str, bytes], bytes | None],
                      dbs: dict[str, Any]) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for (table, key), value in ops.items():
                        if value is None:
                            txn.delete(stored_key(key), db=dbs[table])
                        elif len(key) < LONG_KEY:
                            txn.put(key, value, db=dbs[table])
                        else:
                            txn.put(stored_key(key), stored_value(key, value), db=dbs[table])
                self.commits += 1
                return
            except lmdb.MapFullError:
                self._grow()

    def _grow(self) -> None:
        with self._resize_lock:
            size = self.env.info()["map_size"] * 2
            self.env.set_mapsize(size)
        self.map_grown += 1
        log.info("LMDB map grown to %d MiB", size >> 20)

    def flush(self) -> None:
        """fsync what has been committed (``batch`` mode's timer; a no-op cost in ``always``)."""
        self.env.sync(True)

    def close(self) -> None:
        try:
            self.env.sync(True)
        finally:
            self.env.close()
