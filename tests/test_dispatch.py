"""The worker's dispatcher in-process, on a real ledger and queue: batched bookkeeping, and nothing lost when a
pass fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import jobtypes_noop  # noqa: F401 - registers the noop type
import pytest

from engine.config import load_settings
from engine.storage.status import JobStatus
from engine.worker.dispatch import Dispatch
from engine.worker.executor import Executor

WAIT_S = 30.0  # a hang guard


@pytest.fixture
def dispatch(ops: Any) -> Iterator[Dispatch]:
    executor = Executor(ops.ledger, ops.queue, ops.paths, ops.credentials, "w1")
    feeder = Dispatch(ops.ledger, ops.queue, executor, lambda: load_settings(ops.paths), "w1", concurrency=3)
    yield feeder
    feeder.shutdown()


def run_until(dispatch: Dispatch, ops: Any, done: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while ops.ledger.count(JobStatus.SUCCEEDED) < done or dispatch.running():
        assert time.monotonic() < deadline, "the dispatcher did not finish the jobs"
        dispatch.step()


def test_jobs_share_transactions(ops: Any, dispatch: Dispatch) -> None:
    commits: list[int] = []
    ops.ledger.add_listener(lambda events: commits.append(len(events)))
    jobs = [ops.create("noop", {"sleep_s": 0.05}) for _ in range(9)]
    commits.clear()  # the creates' own
    run_until(dispatch, ops, 9)
    assert {ops.get(job["id"])["status"] for job in jobs} == {"succeeded"}
    assert sum(commits) == 18  # a started and a succeeded event per job
    assert len(commits) < 18  # and far fewer commits: claims go three at a time, successes with the next claims
    assert max(commits) >= 3


def test_a_pass_is_one_write_transaction_when_the_queue_is_in_the_ledger(ops: Any, dispatch: Dispatch) -> None:
    """The messages leave the queue in the transaction that claims their jobs, not in one of their own."""
    assert ops.queue.lives_in(ops.ledger.sqlite_file)
    jobs = [ops.create("noop", {}) for _ in range(3)]
    queue_writes: list[str] = []
    ops.queue.storage.conn.set_trace_callback(
        lambda sql: queue_writes.append(sql) if sql.lstrip().upper().startswith(("BEGIN", "DELETE")) else None
    )
    try:
        dispatch.step()
    finally:
        ops.queue.storage.conn.set_trace_callback(None)
    assert queue_writes == []
    assert ops.queue.pending_count() == 0
    assert sorted(dispatch.running()) == [job["id"] for job in jobs]
    run_until(dispatch, ops, 3)


def test_a_failed_pass_loses_nothing(ops: Any, dispatch: Dispatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger refuses one pass (say, the database was unreachable): the pass's messages stay on the queue (they
    leave it only with the claims' commit), the successes waiting to be recorded are kept, and every job still
    succeeds once."""
    jobs = [ops.create("noop", {}) for _ in range(3)]
    dispatch.step()  # claims all three; the job threads run them
    deadline = time.monotonic() + WAIT_S
    while len(dispatch._succeeded) < 3:  # the job threads reported; nothing is recorded yet
        assert time.monotonic() < deadline
        time.sleep(0.01)
    more = [ops.create("noop", {}) for _ in range(2)]
    real_settle = ops.ledger.settle
    calls = []

    def failing_once(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("database unreachable")
        return real_settle(*args)

    monkeypatch.setattr(ops.ledger, "settle", failing_once)
    dispatch.step()  # logs the failure, pauses briefly
    _, succeeded, to_claim, *_ = calls[0]
    assert (sorted(job["id"] for job, _ in succeeded), to_claim) == ([j["id"] for j in jobs], [j["id"] for j in more])
    assert ops.queue.pending_count() == 2  # the two messages are still queued
    run_until(dispatch, ops, 5)
    for job in jobs + more:
        current = ops.get(job["id"])
        assert (current["status"], current["attempts"]) == ("succeeded", 1)


def test_a_broken_config_file_claims_nothing(ops: Any, dispatch: Dispatch) -> None:
    """Settings are read before the claims: a config file broken mid-run leaves the jobs waiting, not running
    with nobody running them, and they run once the file is mended."""
    jobs = [ops.create("noop", {}) for _ in range(2)]
    ops.paths.config.write_text("{not json")
    dispatch.step()
    assert {ops.get(job["id"])["status"] for job in jobs} == {"pending"}
    assert ops.queue.pending_count() == 2
    ops.paths.config.write_text("{}")
    run_until(dispatch, ops, 2)


def test_a_pass_with_idle_threads_pauses_while_jobs_arrive(
    ops: Any, dispatch: Dispatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that found fewer messages than idle threads pauses briefly, so the next one serves more jobs; a pass
    that filled every thread does not, nor does one that found nothing (an idle worker takes new work at once)."""
    from engine.worker import dispatch as module

    pauses: list[float] = []
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=pauses.append))  # the dispatcher's sleeps only
    ops.create("noop", {})
    dispatch.step()  # one message, three idle threads
    assert pauses == [module.BUSY_PAUSE_S]
    run_until(dispatch, ops, 1)
    pauses.clear()
    for _ in range(3):
        ops.create("noop", {})
    dispatch.step()  # a message for every thread
    assert pauses == []
    run_until(dispatch, ops, 4)
    pauses.clear()
    monkeypatch.setattr(ops.queue, "wait_for_work", lambda generation: None)
    dispatch.step()  # nothing queued, nothing to record
    assert pauses == []


def test_a_job_claimed_as_shutdown_begins_is_run_not_handed_back(
    ops: Any, dispatch: Dispatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutdown begins while a pass commits its claims: the job is already `running` in the ledger, so it is started
    and gets the grace period like any running job, instead of going straight back to pending."""
    job = ops.create("noop", {})
    claimed = threading.Event()
    real_settle = ops.ledger.settle

    def settle_then_pause(*args: Any, **kwargs: Any) -> Any:
        result = real_settle(*args, **kwargs)
        claimed.set()
        time.sleep(0.3)  # close() arrives here, between the claim's commit and the job's start
        return result

    monkeypatch.setattr(ops.ledger, "settle", settle_then_pause)
    stepping = threading.Thread(target=dispatch.step)
    stepping.start()
    assert claimed.wait(WAIT_S)
    dispatch.close()
    assert dispatch.running() == [job["id"]]  # close() returned after the pass gave the job to a thread
    stepping.join(WAIT_S)
    monkeypatch.setattr(ops.ledger, "settle", real_settle)
    run_until(dispatch, ops, 1)
    assert ops.get(job["id"])["status"] == "succeeded"
