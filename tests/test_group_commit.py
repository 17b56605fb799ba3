"""Group commit: concurrent writers share transactions, yet each gets its own result or its own error."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from engine.storage.group_commit import Batch, GroupCommit


class RecordingBatch(Batch):
    """A fake database: remembers which operations each committed transaction held."""

    def __init__(self, log: list[list[str]], slow_s: float) -> None:
        self.log = log
        self.slow_s = slow_s
        self.names: list[str] = []

    def new_tx(self) -> list[str]:
        return self.names

    def __exit__(self, exc_type: Any, *_: object) -> None:
        time.sleep(self.slow_s)  # a commit takes a while: writers arriving meanwhile queue up
        if exc_type is None:
            self.log.append(list(self.names))


def run_concurrently(group: GroupCommit, ops: list[Any]) -> list[Any]:
    results: list[Any] = [None] * len(ops)
    start = threading.Barrier(len(ops))

    def call(i: int) -> None:
        start.wait()
        try:
            results[i] = group.run(ops[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def named(name: str, fail: bool = False) -> Any:
    def op(tx: list[str]) -> str:
        tx.append(name)
        if fail:
            raise ValueError(f"{name} refused")
        return name.upper()

    return op


def test_concurrent_writers_share_commits_and_get_their_own_results() -> None:
    log: list[list[str]] = []
    group = GroupCommit(lambda: RecordingBatch(log, 0.02))
    names = [f"op{i}" for i in range(8)]
    results = run_concurrently(group, [named(n) for n in names])
    assert results == [n.upper() for n in names]
    committed = [name for tx in log for name in tx]
    assert sorted(committed) == sorted(names)  # each exactly once
    assert len(log) < len(names)  # and some shared a transaction


def test_one_failing_operation_costs_the_others_nothing() -> None:
    log: list[list[str]] = []
    announced: list[list[str]] = []
    group = GroupCommit(lambda: RecordingBatch(log, 0.02), lambda txs: announced.append(list(txs[0])))
    ops = [named(f"op{i}", fail=(i == 3)) for i in range(6)]
    results = run_concurrently(group, ops)
    assert isinstance(results[3], ValueError) and str(results[3]) == "op3 refused"
    assert [r for i, r in enumerate(results) if i != 3] == ["OP0", "OP1", "OP2", "OP4", "OP5"]
    committed = [name for tx in log for name in tx]
    assert sorted(committed) == ["op0", "op1", "op2", "op4", "op5"]  # the failed one never committed
    assert announced == log  # after_commit heard of each commit, in order, and never of the rolled-back one


def test_an_uncontended_write_runs_on_the_callers_thread() -> None:
    seen: list[str] = []
    group = GroupCommit(lambda: RecordingBatch([], 0))
    result = group.run(lambda tx: seen.append(threading.current_thread().name) or "done")
    assert result == "done" and seen == [threading.current_thread().name]


def test_exclusive_waits_for_the_running_transaction() -> None:
    log: list[list[str]] = []
    group = GroupCommit(lambda: RecordingBatch(log, 0.2))
    inside = threading.Event()

    def slow(tx: list[str]) -> None:
        tx.append("slow")
        inside.set()  # the transaction is open; its commit takes 0.2 s

    writer = threading.Thread(target=group.run, args=(slow,))
    writer.start()
    assert inside.wait(10)
    with group.exclusive():
        assert log == [["slow"]]  # the commit finished before the block began
    writer.join()
    with pytest.raises(ValueError):
        group.run(named("after", fail=True))


class UnsyncedBatch(RecordingBatch):
    """Commits, but the disk fails the sync that would make the commit durable."""

    def durable(self) -> None:
        raise OSError(5, "Input/output error")


def test_a_commit_that_could_not_be_synced_is_neither_announced_nor_run_again() -> None:
    log: list[list[str]] = []
    announced: list[Any] = []
    group = GroupCommit(lambda: UnsyncedBatch(log, 0.02), announced.append)
    results = run_concurrently(group, [named(f"w{i}") for i in range(6)])
    assert all(isinstance(r, OSError) for r in results), results  # no writer is told its write is safe
    assert sorted(name for names in log for name in names) == sorted(f"w{i}" for i in range(6))  # each ran once
    assert announced == []
