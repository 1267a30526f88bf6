"""Group commit: every durable write of one event-loop turn in one store transaction, then the
acknowledgements that waited for it, in the order they were submitted.

The durability contract (spec section 5): a QoS 1 PUBLISH is acknowledged only after the commit
that holds its effects. Writes are collected during a loop turn (``put``/``delete``/``submit``);
at the end of the turn (a callback given to ``schedule``) they become one batch:

- inline (no writer thread): the batch is committed on the loop, then its ``done`` callbacks run.
- threaded (``call_soon_threadsafe`` given): the batch's writes are recorded on the loop and
  handed to one writer thread, which commits (py-lmdb releases the GIL during the fsync) while
  the loop goes on reading; batches queued behind a commit are merged into the next one. The
  ``done`` callbacks come back to the loop through ``call_soon_threadsafe``, batch after batch.

A batch whose commit fails acknowledges nothing: its ``done`` callbacks are not run, the error is
logged and handed to ``on_error`` with them (the broker closes the connections that waited).

Commit latency (for ``/metrics``): the seconds each successful commit took, the store
transaction's commit alone (inline: its end, after the writes were applied; threaded: the
writer's whole transaction), counted on the loop in the cumulative buckets ``COMMIT_BUCKETS``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from broker.storage import ReadTxn, Store, WriteTxn
from broker.storage.overlay import Ops, OverlayTxn

log = logging.getLogger("fleetgate.storage")

Write = Callable[[WriteTxn], None]
Done = Callable[[], None]
_STOP = object()
# Upper bounds (seconds) of the commit latency histogram: an fsync'd LMDB commit takes from
# tens of microseconds (tmpfs, sync off) to tens of milliseconds (a disk).
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0, 2.5)


class _Batch:
    __slots__ = ("ops", "dones")

    def __init__(self, ops: Ops, dones: list[Done]) -> None:
        self.ops = ops
        self.dones = dones


def _recording_txn(store: Store, layers: list[Ops]) -> OverlayTxn:
    """A write transaction that records its writes (for the writer thread) and reads through
    the batches still in flight to the committed store, so it sees every earlier write."""

    def get(table: str, key: bytes) -> bytes | None:
        with store.read() as txn:
            return txn.get(table, key)

    def scan(table: str, prefix: bytes, start: bytes) -> list[tuple[bytes, bytes]]:
        with store.read() as txn:
            return list(txn.scan(table, prefix, start))

    return OverlayTxn(get, scan, layers)


class GroupCommitter:
    def __init__(
        self,
        store: Store,
        schedule: Callable[[Callable[[], None]], object],
        *,
        call_soon_threadsafe: Callable[..., object] | None = None,
        on_error: Callable[[BaseException, list[Done]], None] | None = None,
    ) -> None:
        self.store = store
        self._schedule = schedule
        self._entries: list[Any] = []  # (table, key, value | None) tuples and Write callables
        self._dones: list[Done] = []
        self._scheduled = False
        self.on_error = on_error
        self.writes = 0  # submitted so far: the broker compares it around a PUBLISH
        # Counters for $SYS and the benchmarks.
        self.commits = 0
        self.batches_committed = 0
        self.ops_committed = 0
        self.dones_run = 0
        self.failures = 0
        # Commit latency: per bucket of COMMIT_BUCKETS (the last one: above them all), and sum.
        self.commit_counts = [0] * (len(COMMIT_BUCKETS) + 1)
        self.commit_seconds = 0.0
        self._threadsafe = call_soon_threadsafe
        self._inflight: deque[_Batch] = deque()  # handed to the writer, not yet completed
        # Batches handed to the writer and batches it has finished (committed or failed),
        # for drain(); the writer counts under the condition.
        self._handed = 0
        self._finished = 0
        self._finished_cond = threading.Condition()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if call_soon_threadsafe is not None:
            self._thread = threading.Thread(target=self._writer, name="fleetgate-commit",
                                            daemon=True)
            self._thread.start()

    # -- submitting -----------------------------------------------------------------------

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._entries.append((table, key, value))
        self._submitted()

    def delete(self, table: str, key: bytes) -> None:
        self._entries.append((table, key, None))
        self._submitted()

    def submit(self, write: Write | None, done: Done | None = None) -> None:
        """Run ``write`` in this turn's transaction, then ``done`` once it is committed."""
        if write is not None:
            self._entries.append(write)
            self.writes += 1
        if done is not None:
            self._dones.append(done)
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.end_turn)

    def _submitted(self) -> None:
        self.writes += 1
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.end_turn)

    @property
    def idle(self) -> bool:
        """Nothing submitted is waiting for a commit."""
        return not (self._entries or self._dones or self._inflight)

    def after_commit(self, done: Done) -> None:
        """Run ``done`` once everything submitted so far is committed (now, if it is)."""
        if self.idle:
            done()
        else:
            self.submit(None, done)

    # -- committing -----------------------------------------------------------------------

    def end_turn(self) -> None:
        """The end of a loop turn: this turn's writes become one batch."""
        self._scheduled = False
        entries, dones = self._entries, self._dones
        if not entries and not dones:
            return
        self._entries, self._dones = [], []
        if self._thread is None:
            self._commit_inline(entries, dones)
            return
        if not entries and not self._inflight:
            self._run(dones)
            return
        txn = _recording_txn(self.store, [batch.ops for batch in self._inflight])
        try:
            _replay(entries, txn)
        except Exception as error:
            self._failed(error, dones)
            return
        batch = _Batch(txn.pending, dones)
        self._inflight.append(batch)
        self._handed += 1
        self._queue.put(batch)

    def drain(self) -> None:
        """Commit everything submitted so far before returning.

        For synchronous code beside the group-committed writes (the Device2 service's admin
        operations): its transaction must neither miss nor overwrite a batch still on its way
        to the store. Costs nothing when nothing is pending; otherwise it blocks the loop for
        the commits in flight (their acknowledgements still run later, on the loop)."""
        self.end_turn()
        if self._thread is None:
            return
        with self._finished_cond:
            while self._finished < self._handed:
                self._finished_cond.wait()

    def _commit_inline(self, entries: list[Any], dones: list[Done]) -> None:
        if entries:
            try:
                with self.store.write() as txn:
                    _replay(entries, txn)
                    started = time.perf_counter()  # the commit is the with block's end
            except Exception as error:
                self._failed(error, dones)
                return
            self._timed(time.perf_counter() - started)
            self.commits += 1
            self.batches_committed += 1
            self.ops_committed += len(entries)
        self._run(dones)

    def _timed(self, seconds: float) -> None:
        self.commit_counts[bisect_left(COMMIT_BUCKETS, seconds)] += 1
        self.commit_seconds += seconds

    def _run(self, dones: list[Done]) -> None:
        self.dones_run += len(dones)
        for done in dones:
            done()

    def _failed(self, error: BaseException, dones: list[Done]) -> None:
        self.failures += 1
        log.error("store commit failed, %d acknowledgements withheld: %r", len(dones), error)
        if self.on_error is not None:
            self.on_error(error, dones)

    # -- the writer thread ----------------------------------------------------------------

    def _writer(self) -> None:
        store, get = self.store, self._queue.get
        while True:
            batches: list[_Batch] = []
            stop = False
            item = get()
            while True:  # take everything queued behind the last commit: one transaction
                if item is _STOP:
                    stop = True
                else:
                    batches.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            error: BaseException | None = None
            if batches:
                ops = batches[0].ops
                if len(batches) > 1:
                    ops = {}
                    for batch in batches:
                        ops.update(batch.ops)
                apply = getattr(store, "apply", None)
                started = time.perf_counter()
                try:
                    if apply is not None:
                        apply(ops)
                    else:
                        with store.write() as txn:
                            _replay_ops(ops, txn)
                except Exception as exc:
                    error = exc
                seconds = time.perf_counter() - started
                assert self._threadsafe is not None
                self._threadsafe(self._completed, batches, len(ops), error, seconds)
                with self._finished_cond:
                    self._finished += len(batches)
                    self._finished_cond.notify_all()
            if stop:
                return

    def _completed(self, batches: list[_Batch], ops: int, error: BaseException | None,
                   seconds: float) -> None:
        """On the loop: the writer committed (or failed) these batches in ``seconds``."""
        for batch in batches:
            done = self._inflight.popleft()
            assert done is batch
        if error is None:
            self._timed(seconds)
            self.commits += 1
            self.batches_committed += len(batches)
            self.ops_committed += ops
        for batch in batches:
            if error is None:
                self._run(batch.dones)
            else:
                self._failed(error, batch.dones)

    # -- shutdown ----------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Commit what this turn submitted and stop the writer after every queued batch. The
        last batches' callbacks are still delivered through ``call_soon_threadsafe``."""
        self.end_turn()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the store writer did not finish within %.0f s", timeout)
            self._thread = None


class DrainedStore:
    """A store seen through a group committer: every transaction first drains the committer,
    so synchronous readers and writers see, and never overwrite, the writes of earlier turns
    that are still on their way to the store."""

    def __init__(self, store: Store, committer: GroupCommitter) -> None:
        self._store = store
        self._committer = committer

    def read(self) -> AbstractContextManager[ReadTxn]:
        self._committer.drain()
        return self._store.read()

    def write(self) -> AbstractContextManager[WriteTxn]:
        self._committer.drain()
        return self._store.write()

    def flush(self) -> None:
        self._store.flush()

    def close(self) -> None:
        self._store.close()


def _replay(entries: list[Any], txn: WriteTxn) -> None:
    # Transactions that buffer ops in this shape take put/delete entries as they are: a delete
    # through the API would first read the key to report whether it existed.
    ops: Ops | None = txn.pending if isinstance(txn, OverlayTxn) else None
    for entry in entries:
        if type(entry) is tuple:
            table, key, value = entry
            if ops is not None:
                ops[(table, key)] = value
            elif value is None:
                txn.delete(table, key)
            else:
                txn.put(table, key, value)
        else:
            entry(txn)


def _replay_ops(ops: Ops, txn: WriteTxn) -> None:
    for (table, key), value in ops.items():
        if value is None:
            txn.delete(table, key)
        else:
            txn.put(table, key, value)
