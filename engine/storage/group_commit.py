"""Group commit: writes that arrive together share one transaction and one commit.

A commit is the dearest part of a ledger transition (SQLite writes every page the transaction touched to the
WAL; a claim and a finish touch the same few index pages), and the worker's threads claim and finish jobs at
the same moments. So a thread that wants to write joins a queue: the first one in leads, opening a transaction
and running every queued operation in it; it commits once, makes the commit durable (``Batch.durable``: on
SQLite a sync of the log, once the write lock is free) and wakes the others with their results. An uncontended
write is led by its own thread, with no hand-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Tx = Any

MAX_BATCH = 64


class _Op(Generic[T]):
    __slots__ = ("error", "finished", "fn", "result", "tx", "wake")

    def __init__(self, fn: Callable[[Tx], T]) -> None:
        self.fn = fn
        self.wake: threading.Event | None = None  # made only for a writer that has to wait
        self.finished = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.tx: Tx = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """Runs ``fn(tx)`` operations in shared transactions. ``open_batch()`` opens one (see ``Batch``); the ledger
    supplies it, so this module knows nothing of SQL. ``after_commit(txs)`` runs on the leader after each commit,
    with the transactions' Tx objects in the order they ran (so side effects follow commit order), before any
    writer of the batch returns."""

    def __init__(self, open_batch: Callable[[], Batch], after_commit: Callable[[list[Tx]], None] | None = None) -> None:
        self._open_batch = open_batch
        self._after_commit = after_commit
        self._mutex = threading.Lock()
        self._queue: list[_Op[Any]] = []
        self._leading = False

    def run(self, fn: Callable[[Tx], T]) -> T:
        """The operation's result, once committed (or its error)."""
        op: _Op[T] = _Op(fn)
        with self._mutex:
            self._queue.append(op)
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                op.wake = threading.Event()
        if op.wake is not None:
            op.wake.wait()
            if op.finished:
                return op.outcome()
        self._lead()
        return op.outcome()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No transaction runs inside this block (e.g. while the connection closes)."""
        while True:
            with self._mutex:
                if not self._leading:
                    self._leading = True
                    break
            time.sleep(0.001)
        try:
            yield
        finally:
            self._hand_over([])

    def _lead(self) -> None:
        with self._mutex:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._commit(batch)
        finally:
            self._hand_over(batch)

    def _hand_over(self, batch: list[_Op[Any]]) -> None:
        """Wake the batch's writers, and make the first queued writer (if any) the next leader."""
        with self._mutex:
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leading = False
        for op in batch:
            op.finished = True
            if op.wake is not None:
                op.wake.set()
        if successor is not None:  # it wakes unfinished, so it leads
            successor.wake.set()  # type: ignore[union-attr]  # a queued writer always waits

    def _commit(self, batch: list[_Op[Any]]) -> None:
        """All operations in one transaction; if any of them fails, roll it back and run each on its own, so that
        one operation's error (say, an operator's invalid transition) costs the others nothing but a retry."""
        try:
            with self._open_batch() as writer:
                for op in batch:
                    op.tx = writer.new_tx()
                    op.result = op.fn(op.tx)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].tx = exc, None
                return
            for op in batch:
                op.result = None
                self._commit([op])
            return
        except BaseException as exc:
            for op in batch:
                op.error, op.tx = exc, None
            raise
        try:
            writer.durable()
        except Exception as exc:  # committed, but not known to be on disk: never run again, never announced
            for op in batch:
                op.error, op.tx = exc, None
            return
        if self._after_commit is not None:
            self._after_commit([op.tx for op in batch])


class Batch:
    """What ``GroupCommit`` needs from a database: a transaction. Used as a context manager that commits on a
    clean exit and rolls back on an exception."""

    def new_tx(self) -> Tx:
        raise NotImplementedError

    def durable(self) -> None:
        """After the commit, before any writer is answered: make it survive a power cut, if the commit did not."""

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        raise NotImplementedError
