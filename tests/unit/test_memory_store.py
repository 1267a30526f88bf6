"""broker/storage/memory_store.py: the storage contract, plus MemoryStore's own counters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.storage import Store
from broker.storage.memory_store import MemoryStore
from tests.storage_contract import Boom, StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        store = MemoryStore()
        yield store
        store.close()


def test_commits_counted_only_on_success() -> None:
    """``commits`` counts committed write transactions, not aborted ones."""
    store = MemoryStore()
    with store.write() as txn:
        txn.put("t", b"k", b"v")
    with pytest.raises(Boom), store.write() as txn:
        raise Boom()
    assert store.commits == 1


def test_close_forgets_everything() -> None:
    """close() drops the in-memory tables."""
    store = MemoryStore()
    with store.write() as txn:
        txn.put("t", b"k", b"v")
    store.close()
    with store.read() as txn:
        assert txn.get("t", b"k") is None
