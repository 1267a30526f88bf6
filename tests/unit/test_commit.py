"""broker/storage/commit.py: one transaction per loop turn, acknowledgements after the commit
and in order, nothing acknowledged when a commit fails; inline and with the writer thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.storage import WriteTxn
from broker.storage.commit import DrainedStore, GroupCommitter
from broker.storage.lmdb_store import LmdbStore
from broker.storage.memory_store import MemoryStore


class Boom(Exception):
    pass


class FlakyStore(LmdbStore):
    """An LMDB store whose next ``apply`` fails, or blocks until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, sync="none")
        self.fail_next = False
        self.gate: threading.Event | None = None

    def apply(self, ops: Any) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail_next:
            self.fail_next = False
            raise Boom("disk on fire")
        super().apply(ops)


def value(store: Any, table: str, key: bytes) -> bytes | None:
    with store.read() as txn:
        return txn.get(table, key)  # type: ignore[no-any-return]


# -- inline: the committer commits on the loop ---------------------------------------------------


class Turns:
    """A hand-run loop: ``schedule`` appends, ``run`` is the end of the turn."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], None]] = []

    def __call__(self, callback: Callable[[], None]) -> None:
        self.scheduled.append(callback)

    def run(self) -> None:
        while self.scheduled:
            self.scheduled.pop(0)()


def test_inline_one_transaction_per_turn() -> None:
    """All writes of a turn (puts, deletes, callables) land in one commit; nothing before it."""
    store, turns = MemoryStore(), Turns()
    committer = GroupCommitter(store, turns)
    for i in range(50):
        committer.put("t", b"%02d" % i, b"v")
    committer.delete("t", b"00")
    committer.submit(lambda txn: txn.put("u", b"k", b"w"))
    assert store.commits == 0 and value(store, "t", b"01") is None
    turns.run()
    assert store.commits == 1
    assert value(store, "t", b"00") is None and value(store, "t", b"49") == b"v"
    assert value(store, "u", b"k") == b"w"
    committer.put("t", b"x", b"v")
    turns.run()
    assert store.commits == 2
    assert committer.commits == 2 and committer.ops_committed == 53


def test_inline_dones_after_commit_in_order() -> None:
    store, turns = MemoryStore(), Turns()
    committer = GroupCommitter(store, turns)
    seen: list[tuple[int, bytes | None]] = []
    for i in range(5):
        committer.put("t", b"%d" % i, b"v%d" % i)
        committer.submit(None, lambda i=i: seen.append((i, value(store, "t", b"%d" % i))))
    assert seen == []
    turns.run()
    assert seen == [(i, b"v%d" % i) for i in range(5)]


def test_inline_failed_batch_acknowledges_nothing() -> None:
    """A write that fails aborts the turn's transaction: no done runs, on_error gets them."""
    store, turns = MemoryStore(), Turns()
    failed: list[tuple[BaseException, list[Any]]] = []
    committer = GroupCommitter(store, turns, on_error=lambda e, dones: failed.append((e, dones)))
    acked: list[int] = []

    def explode(txn: WriteTxn) -> None:
        raise Boom()

    committer.put("t", b"a", b"1")
    committer.submit(explode, lambda: acked.append(1))
    committer.submit(None, lambda: acked.append(2))
    turns.run()
    assert acked == [] and value(store, "t", b"a") is None
    assert len(failed) == 1 and isinstance(failed[0][0], Boom) and len(failed[0][1]) == 2
    committer.put("t", b"b", b"2")
    committer.submit(None, lambda: acked.append(3))
    turns.run()
    assert acked == [3] and value(store, "t", b"b") == b"2"


def test_after_commit_runs_at_once_when_idle() -> None:
    store, turns = MemoryStore(), Turns()
    committer = GroupCommitter(store, turns)
    ran: list[str] = []
    committer.after_commit(lambda: ran.append("idle"))
    assert ran == ["idle"]
    committer.put("t", b"k", b"v")
    committer.after_commit(lambda: ran.append("waited"))
    assert ran == ["idle"]
    turns.run()
    assert ran == ["idle", "waited"]


def test_writes_counter_marks_durable_work() -> None:
    """``writes`` grows with each put/delete/write callable, not with a done-only submit."""
    committer = GroupCommitter(MemoryStore(), Turns())
    committer.submit(None, lambda: None)
    assert committer.writes == 0
    committer.put("t", b"k", b"v")
    committer.delete("t", b"k")
    committer.submit(lambda txn: None)
    assert committer.writes == 3


# -- threaded: a writer thread commits, callbacks come back to the loop --------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    import uvloop

    loop = uvloop.new_event_loop()
    yield loop
    loop.close()


def threaded(store: Any, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> GroupCommitter:
    return GroupCommitter(store, loop.call_soon, call_soon_threadsafe=loop.call_soon_threadsafe,
                          **kwargs)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


def test_threaded_one_commit_per_turn_then_dones_in_order(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    store = LmdbStore(tmp_path / "lmdb")
    committer = threaded(store, loop)
    seen: list[tuple[int, bytes | None]] = []

    async def main() -> None:
        for i in range(100):  # one turn: no await between the submits
            committer.put("t", b"%03d" % i, b"v")
            committer.submit(None, lambda i=i: seen.append((i, value(store, "t", b"%03d" % i))))
        await until(lambda: len(seen) == 100)

    loop.run_until_complete(main())
    assert seen == [(i, b"v") for i in range(100)]
    assert store.commits == 1 and committer.commits == 1 and committer.idle
    committer.close()
    store.close()


def test_threaded_batches_merge_behind_a_slow_commit(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    """Turns queued while a commit is in progress go into the next commit together, and a
    write of a later turn reads the earlier, not yet committed, ones."""
    store = FlakyStore(tmp_path / "lmdb")
    store.gate = threading.Event()
    committer = threaded(store, loop)
    acked: list[int] = []
    seen_in_txn: list[bytes | None] = []

    async def main() -> None:
        committer.put("t", b"first", b"1")
        committer.submit(None, lambda: acked.append(0))
        await asyncio.sleep(0.01)  # the writer now waits in apply
        for turn in range(1, 4):
            committer.put("t", b"turn%d" % turn, b"x")
            committer.submit(None, lambda turn=turn: acked.append(turn))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        committer.submit(lambda txn: seen_in_txn.append(txn.get("t", b"turn2")))
        await asyncio.sleep(0.01)
        assert acked == []
        store.gate.set()  # type: ignore[union-attr]
        await until(lambda: committer.idle)

    loop.run_until_complete(main())
    assert acked == [0, 1, 2, 3]
    assert seen_in_txn == [b"x"]
    assert store.commits == 2  # the first batch, then the four turns behind it at once
    assert committer.batches_committed == 5
    committer.close()
    store.close()


def test_threaded_failed_commit_acknowledges_nothing(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    store = FlakyStore(tmp_path / "lmdb")
    failed: list[list[Any]] = []
    committer = threaded(store, loop, on_error=lambda e, dones: failed.append(dones))
    acked: list[int] = []

    async def main() -> None:
        store.fail_next = True
        committer.put("t", b"lost", b"1")
        committer.submit(None, lambda: acked.append(1))
        await until(lambda: committer.idle)
        committer.put("t", b"kept", b"2")
        committer.submit(None, lambda: acked.append(2))
        await until(lambda: committer.idle)

    loop.run_until_complete(main())
    assert acked == [2] and len(failed) == 1 and len(failed[0]) == 1
    assert value(store, "t", b"lost") is None and value(store, "t", b"kept") == b"2"
    committer.close()
    store.close()


def test_close_commits_the_current_turn(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    store = LmdbStore(tmp_path / "lmdb")
    committer = threaded(store, loop)
    committer.put("t", b"k", b"v")
    committer.close()
    assert value(store, "t", b"k") == b"v"
    store.close()


def test_drained_store_sees_and_keeps_writes_still_being_committed(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    """A synchronous transaction beside grouped writes (the Device2 service's admin operations)
    first drains the committer: it reads the pending write and cannot overwrite it."""
    store = FlakyStore(tmp_path / "lmdb")
    committer = threaded(store, loop)
    drained = DrainedStore(store, committer)

    async def main() -> None:
        store.gate = threading.Event()  # the writer thread holds the commit...
        committer.put("t", b"k", b"device")
        committer.end_turn()
        assert value(store, "t", b"k") is None  # ...so the store alone does not have it yet
        threading.Timer(0.05, store.gate.set).start()
        with drained.read() as txn:  # waits for the commit in flight
            assert txn.get("t", b"k") == b"device"
        committer.put("t", b"k2", b"later")  # not even handed to the writer yet
        with drained.write() as txn:
            assert txn.get("t", b"k2") == b"later"
            txn.put("t", b"admin", b"x")
        await until(lambda: committer.idle)

    loop.run_until_complete(main())
    assert (value(store, "t", b"k"), value(store, "t", b"k2"), value(store, "t", b"admin")) == (
        b"device", b"later", b"x")
    committer.close()
    store.close()


def test_drain_is_free_when_nothing_is_pending(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "lmdb", sync="none")
    turns = Turns()
    committer = GroupCommitter(store, turns)
    committer.drain()
    assert store.commits == 0
    committer.put("t", b"k", b"v")
    committer.drain()  # inline: commits this turn's writes at once
    assert value(store, "t", b"k") == b"v" and store.commits == 1
    store.close()
