"""The storage contract (broker/storage/__init__.py), run against every ``Store``.

A test module subclasses ``StoreContract`` and provides a ``store`` fixture::

    class TestMemoryStore(StoreContract):
        @pytest.fixture
        def store(self) -> Iterator[Store]:
            yield MemoryStore()
"""

from __future__ import annotations

import pytest

from broker.storage import Store


class Boom(Exception):
    """Raised inside a write transaction to abort it."""


def put(store: Store, table: str, key: bytes, value: bytes) -> None:
    with store.write() as txn:
        txn.put(table, key, value)


class StoreContract:
    """Behaviour every Store implementation must have; the subclass supplies ``store``."""

    def test_get_missing(self, store: Store) -> None:
        """get of an absent key, or from a table never written, is None."""
        with store.read() as txn:
            assert txn.get("t", b"k") is None
            assert list(txn.scan("t")) == []

    def test_put_then_get(self, store: Store) -> None:
        """A committed put is visible to later read transactions."""
        put(store, "t", b"k", b"v")
        with store.read() as txn:
            assert txn.get("t", b"k") == b"v"

    def test_put_replaces(self, store: Store) -> None:
        """A second put of a key replaces its value."""
        put(store, "t", b"k", b"v1")
        put(store, "t", b"k", b"v2")
        with store.read() as txn:
            assert txn.get("t", b"k") == b"v2"
            assert list(txn.scan("t")) == [(b"k", b"v2")]

    def test_empty_value(self, store: Store) -> None:
        """An empty value is stored and is distinct from an absent key."""
        put(store, "t", b"k", b"")
        with store.read() as txn:
            assert txn.get("t", b"k") == b""
            assert list(txn.scan("t")) == [(b"k", b"")]

    def test_delete_return_value(self, store: Store) -> None:
        """delete returns True when the key existed and False otherwise."""
        put(store, "t", b"k", b"v")
        with store.write() as txn:
            assert txn.delete("t", b"k") is True
            assert txn.delete("t", b"k") is False
            assert txn.delete("t", b"never") is False
        with store.read() as txn:
            assert txn.get("t", b"k") is None

    def test_delete_of_key_put_in_same_txn(self, store: Store) -> None:
        """delete sees a put made earlier in the same transaction."""
        with store.write() as txn:
            txn.put("t", b"k", b"v")
            assert txn.delete("t", b"k") is True
        with store.read() as txn:
            assert txn.get("t", b"k") is None

    def test_scan_in_key_order(self, store: Store) -> None:
        """scan yields pairs in bytewise key order, whatever the insertion order."""
        keys = [b"b", b"a", b"ab", b"\x00", b"\xff", b"aa", b"B"]
        with store.write() as txn:
            for key in keys:
                txn.put("t", key, key + b"!")
        with store.read() as txn:
            assert list(txn.scan("t")) == [(k, k + b"!") for k in sorted(keys)]

    def test_scan_prefix(self, store: Store) -> None:
        """scan with a prefix yields only keys starting with it, still in order."""
        with store.write() as txn:
            for key in (b"dev/2", b"dev/1", b"de", b"dev", b"devx", b"other", b"dev/1/a"):
                txn.put("t", key, b"")
        with store.read() as txn:
            assert [k for k, _ in txn.scan("t", b"dev/")] == [b"dev/1", b"dev/1/a", b"dev/2"]
            assert [k for k, _ in txn.scan("t", b"dev")] == [
                b"dev", b"dev/1", b"dev/1/a", b"dev/2", b"devx"]
            assert list(txn.scan("t", b"zzz")) == []

    def test_scan_from_a_start_key(self, store: Store) -> None:
        """scan(prefix, start) resumes a walk: keys ≥ start within the prefix, in order, also
        inside a write transaction with pending writes."""
        with store.write() as txn:
            for key in (b"c/1", b"c/2", b"c/3", b"d/1", b"b/9"):
                txn.put("t", key, b"")
        with store.read() as txn:
            assert [k for k, _ in txn.scan("t", b"c/", b"c/2")] == [b"c/2", b"c/3"]
            assert [k for k, _ in txn.scan("t", b"c/", b"c/2\x00")] == [b"c/3"]
            assert [k for k, _ in txn.scan("t", b"c/", b"a")] == [b"c/1", b"c/2", b"c/3"]
            assert list(txn.scan("t", b"c/", b"c/4")) == []
        with store.write() as txn:
            txn.put("t", b"c/25", b"")
            txn.delete("t", b"c/3")
            assert [k for k, _ in txn.scan("t", b"c/", b"c/2\x00")] == [b"c/25"]

    def test_scan_after_delete(self, store: Store) -> None:
        """A deleted key no longer appears in scans."""
        with store.write() as txn:
            for key in (b"a", b"b", b"c"):
                txn.put("t", key, b"")
        with store.write() as txn:
            txn.delete("t", b"b")
        with store.read() as txn:
            assert [k for k, _ in txn.scan("t")] == [b"a", b"c"]

    def test_write_txn_atomic_on_exception(self, store: Store) -> None:
        """An exception inside a write transaction discards all of its writes."""
        put(store, "t", b"keep", b"old")
        with pytest.raises(Boom), store.write() as txn:
            txn.put("t", b"keep", b"new")
            txn.put("t", b"added", b"x")
            txn.put("other", b"k", b"x")
            txn.delete("t", b"keep")
            raise Boom()
        with store.read() as txn:
            assert txn.get("t", b"keep") == b"old"
            assert txn.get("t", b"added") is None
            assert txn.get("other", b"k") is None
            assert list(txn.scan("t")) == [(b"keep", b"old")]

    def test_store_usable_after_aborted_txn(self, store: Store) -> None:
        """After an aborted write transaction the next one commits normally."""
        with pytest.raises(Boom), store.write() as txn:
            txn.put("t", b"a", b"1")
            raise Boom()
        put(store, "t", b"b", b"2")
        with store.read() as txn:
            assert list(txn.scan("t")) == [(b"b", b"2")]

    def test_read_your_writes_in_write_txn(self, store: Store) -> None:
        """Inside a write transaction get and scan see its own puts and deletes."""
        with store.write() as txn:
            txn.put("t", b"a", b"1")
            txn.put("t", b"c", b"3")
        with store.write() as txn:
            txn.put("t", b"b", b"2")
            txn.put("t", b"a", b"1'")
            txn.delete("t", b"c")
            assert txn.get("t", b"a") == b"1'"
            assert txn.get("t", b"b") == b"2"
            assert txn.get("t", b"c") is None
            assert list(txn.scan("t")) == [(b"a", b"1'"), (b"b", b"2")]
            assert list(txn.scan("t", b"b")) == [(b"b", b"2")]
            txn.put("t", b"c", b"3'")
            assert txn.get("t", b"c") == b"3'"
        with store.read() as txn:
            assert list(txn.scan("t")) == [(b"a", b"1'"), (b"b", b"2"), (b"c", b"3'")]

    def test_tables_independent(self, store: Store) -> None:
        """The same key in two tables holds two values; deleting one leaves the other."""
        with store.write() as txn:
            txn.put("retained", b"k", b"r")
            txn.put("sessions", b"k", b"s")
        with store.write() as txn:
            assert txn.delete("retained", b"k")
        with store.read() as txn:
            assert txn.get("retained", b"k") is None
            assert txn.get("sessions", b"k") == b"s"
            assert list(txn.scan("retained")) == []
            assert list(txn.scan("sessions")) == [(b"k", b"s")]

    def test_values_are_copied(self, store: Store) -> None:
        """Mutating a bytearray after put does not change the stored value."""
        key, value = bytearray(b"k"), bytearray(b"v")
        with store.write() as txn:
            txn.put("t", key, value)  # type: ignore[arg-type]
        key[0], value[0] = ord("x"), ord("y")
        with store.read() as txn:
            assert txn.get("t", b"k") == b"v"

    def test_binary_keys_and_values(self, store: Store) -> None:
        """Arbitrary bytes, including NUL and 0xff, round-trip as keys and values."""
        data = bytes(range(256))
        put(store, "t", data, data[::-1])
        with store.read() as txn:
            assert txn.get("t", data) == data[::-1]

    def test_keys_of_any_length(self, store: Store) -> None:
        """Keys far past LMDB's 511 bytes (a 65,535-byte topic name, a long client id) and
        keys around the length where the LMDB store changes their form: put, get, replace,
        delete and prefix scans (short and long prefixes) see exactly the keys written."""
        shared = b"t/" + b"x" * 600  # long keys that agree on their first 600 bytes
        keys = [shared + b"/a", shared + b"/b", shared, b"t/" + b"y" * 65_533,
                b"t/" + b"z" * 477, b"t/" + b"z" * 478, b"t/" + b"z" * 479, b"t/short"]
        with store.write() as txn:
            for key in keys:
                txn.put("t", key, key[-3:] + b"!")
        with store.read() as txn:
            for key in keys:
                assert txn.get("t", key) == key[-3:] + b"!"
            assert txn.get("t", shared + b"/c") is None
            assert txn.get("t", b"t/" + b"z" * 480) is None
            assert sorted(k for k, _ in txn.scan("t")) == sorted(keys)
            assert sorted(k for k, _ in txn.scan("t", shared)) == sorted(
                [shared + b"/a", shared + b"/b", shared])
            assert [k for k, _ in txn.scan("t", shared + b"/b")] == [shared + b"/b"]
            assert [k for k, _ in txn.scan("t", b"t/z")] == [
                b"t/" + b"z" * 477, b"t/" + b"z" * 478, b"t/" + b"z" * 479]
        with store.write() as txn:
            txn.put("t", shared + b"/a", b"new")
            txn.delete("t", shared + b"/b")
            assert txn.get("t", shared + b"/a") == b"new"
            assert txn.get("t", shared + b"/b") is None
        with store.read() as txn:
            assert txn.get("t", shared + b"/a") == b"new"
            assert txn.get("t", shared + b"/b") is None
            assert sorted(k for k, _ in txn.scan("t", shared)) == [shared, shared + b"/a"]
