"""broker/storage/lmdb_store.py: the storage contract, map growth, reopening, sync modes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.storage import Store
from broker.storage.lmdb_store import LmdbStore
from tests.storage_contract import Boom, StoreContract


class TestLmdbStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = LmdbStore(tmp_path / "lmdb")
        yield store
        store.close()


class TestLmdbStoreNoSync(StoreContract):
    """The contract does not depend on the sync mode."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = LmdbStore(tmp_path / "lmdb", sync="none")
        yield store
        store.close()


def test_map_grows_on_demand(tmp_path: Path) -> None:
    """Writes beyond a tiny initial map grow it (doubling) instead of failing, in one commit."""
    store = LmdbStore(tmp_path / "lmdb", map_size=64 * 1024)
    value = b"x" * 1000
    with store.write() as txn:
        for i in range(2000):  # ~2 MB, far beyond 64 KiB
            txn.put("t", b"%06d" % i, value)
    assert store.map_grown >= 5
    assert store.commits == 1
    with store.read() as txn:
        assert sum(1 for _ in txn.scan("t")) == 2000
        assert txn.get("t", b"001999") == value
    store.close()


def test_reopen_keeps_committed_data(tmp_path: Path) -> None:
    """Committed tables and keys are there after close and reopen; aborted ones are not."""
    store = LmdbStore(tmp_path / "lmdb")
    with store.write() as txn:
        txn.put("retained", b"a/b", b"\x01hello")
        txn.put("sessions", b"c1", b"{}")
    with pytest.raises(Boom), store.write() as txn:
        txn.put("retained", b"lost", b"x")
        raise Boom()
    store.close()
    store = LmdbStore(tmp_path / "lmdb")
    with store.read() as txn:
        assert list(txn.scan("retained")) == [(b"a/b", b"\x01hello")]
        assert txn.get("sessions", b"c1") == b"{}"
    store.close()


def test_table_created_after_reader_began(tmp_path: Path) -> None:
    """A reader older than a table sees that table as empty, not as an error."""
    store = LmdbStore(tmp_path / "lmdb")
    with store.read() as old:
        writer = threading.Thread(target=lambda: _put(store, "new", b"k", b"v"))
        writer.start()
        writer.join(5)
        assert old.get("new", b"k") is None
        assert list(old.scan("new")) == []
    with store.read() as txn:
        assert txn.get("new", b"k") == b"v"
    store.close()


def _put(store: LmdbStore, table: str, key: bytes, value: bytes) -> None:
    with store.write() as txn:
        txn.put(table, key, value)


@pytest.mark.parametrize("sync", ["always", "batch", "none"])
def test_sync_modes(tmp_path: Path, sync: str) -> None:
    """Each mode opens, commits, flushes and reopens; only ``always`` fsyncs every commit."""
    store = LmdbStore(tmp_path / "lmdb", sync=sync)
    assert store.env.flags()["sync"] is (sync == "always")
    _put(store, "t", b"k", b"v")
    store.flush()
    store.close()
    store = LmdbStore(tmp_path / "lmdb", sync=sync)
    with store.read() as txn:
        assert txn.get("t", b"k") == b"v"
    store.close()


def test_unknown_sync_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync"):
        LmdbStore(tmp_path / "lmdb", sync="sometimes")


def test_empty_write_commits_nothing(tmp_path: Path) -> None:
    """A write block without puts or deletes does not start an LMDB write transaction."""
    store = LmdbStore(tmp_path / "lmdb")
    with store.write() as txn:
        assert txn.get("t", b"k") is None
    assert store.commits == 0
    store.close()
