"""Fixtures of the gateway tests: a ``store`` over every Store implementation (MemoryStore, and
LmdbStore in a temporary directory when it exists), a settable clock, and a service on them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from broker.gateway.service import Device2Service
from broker.storage import Store
from broker.storage.lmdb_store import LmdbStore
from broker.storage.memory_store import MemoryStore
from tests.conftest import FAST_SCRYPT  # also imported from here by the gateway tests

STORES = ["memory", "lmdb"]

T0 = 1_700_000_000_000_000  # µs


def make_store(kind: str, path: Path) -> Store:
    if kind == "lmdb":
        return LmdbStore(path / "lmdb", sync="none")
    return MemoryStore()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = make_store(request.param, tmp_path)
    yield s
    s.close()


class Clock:
    """µs clock the test moves by hand."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Recorder:
    """Collects what the service hands to its callbacks."""

    def __init__(self) -> None:
        self.pushed: list[tuple[Any, ...]] = []
        self.disconnected: list[tuple[Any, ...]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.online: set[str] = set()
        self.deliver = True

    def push(self, *args: Any) -> bool:
        self.pushed.append(args)
        return self.deliver

    def disconnect(self, *args: Any) -> None:
        self.disconnected.append(args)

    def is_online(self, cid: str, identity: str) -> bool:
        return identity in self.online

    def on_event(self, cid: str, event: dict[str, Any]) -> None:
        self.events.append((cid, event))

    def types(self) -> list[str]:
        return [e["type"] for _, e in self.events]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def service(store: Store, clock: Clock, recorder: Recorder) -> Device2Service:
    svc = Device2Service(store, "example.com", clock, push=recorder.push,
                         disconnect=recorder.disconnect, online=recorder.is_online,
                         on_event=recorder.on_event, password_cost=FAST_SCRYPT)
    svc.ensure_default_connector()
    return svc


class CountingStore:
    """Wraps a Store and counts, per table, get calls and rows yielded by scans — to check
    which rows an operation touches (not to fake its behaviour)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.gets: dict[str, int] = {}
        self.rows: dict[str, int] = {}

    def reset(self) -> None:
        self.gets.clear()
        self.rows.clear()

    def _wrap(self, txn: Any) -> Any:
        counter = self

        class Txn:
            def get(self, table: str, key: bytes) -> bytes | None:
                counter.gets[table] = counter.gets.get(table, 0) + 1
                return txn.get(table, key)  # type: ignore[no-any-return]

            def scan(self, table: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
                for pair in txn.scan(table, prefix):
                    counter.rows[table] = counter.rows.get(table, 0) + 1
                    yield pair

            def put(self, table: str, key: bytes, value: bytes) -> None:
                txn.put(table, key, value)

            def delete(self, table: str, key: bytes) -> bool:
                return txn.delete(table, key)  # type: ignore[no-any-return]

        return Txn()

    @contextmanager
    def read(self) -> Iterator[Any]:
        with self.inner.read() as txn:
            yield self._wrap(txn)

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.inner.write() as txn:
            yield self._wrap(txn)

    def close(self) -> None:
        self.inner.close()
