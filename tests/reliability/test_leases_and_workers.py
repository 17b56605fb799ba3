"""Lost leases and several workers, with real worker processes: one retry rule, one worker per SQLite ledger file,
and recovery that takes only the jobs of workers that are gone (so several may share a PostgreSQL ledger)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jobtypes_marker  # noqa: F401 - the marker type in this (submitting) process too
import pytest
from test_worker import wait_for
from workerproc import ROOT, WorkerProcess

from engine.config import Paths
from engine.credentials.store import MemoryStore
from engine.events.client import try_wake
from engine.operations import Operations

TYPES_ENV = {"JOBDECK_JOB_MODULES": "bench.noop_jobs,jobtypes_marker", "PYTHONPATH": str(ROOT / "tests")}


def operations(home: Path) -> Operations:
    ops = Operations(Paths(home), store=MemoryStore())
    ops.after_enqueue = lambda: try_wake(ops.paths)
    return ops


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts; all stopped afterwards."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(workers: list[WorkerProcess], home: Path, env: dict[str, str] | None = None) -> WorkerProcess:
    worker = WorkerProcess(home, {**TYPES_ENV, **(env or {})})
    workers.append(worker)
    worker.start()
    return worker


def lost_event(job: dict[str, Any]) -> int:
    """The ``lease_expired`` event of a job, with the snapshot it recorded."""
    (seq,) = [h["seq"] for h in job["history"] if h["type"] == "lease_expired"]
    return seq


def snapshot_at(ops: Operations, seq: int) -> dict[str, Any]:
    (event,) = [e for e in ops.ledger.events_since(seq - 1) if e["seq"] == seq]
    return event["job"]


def wait_for_line(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)


def test_a_killed_worker_s_job_is_retried_with_backoff_as_worker_lost(
    jobdeck_home: Path, workers: list[WorkerProcess]
) -> None:
    """A lost lease goes through the retry decision of an ordinary failure: the attempt counts, the job waits its
    backoff in ``retrying`` and says why."""
    ops = operations(jobdeck_home)
    first = start_worker(workers, jobdeck_home)
    job = ops.create("noop", {"sleep_s": 30}, max_retries=3, retry_base_s=0.5, retry_cap_s=0.5)
    wait_for(ops, job["id"], {"running"})
    first.kill()
    restarted = start_worker(workers, jobdeck_home)  # it holds the lock the dead worker held: it recovers at once
    seq = lost_event(wait_for_history(ops, job["id"], "lease_expired"))
    lost = snapshot_at(ops, seq)
    assert lost["status"] == "retrying" and lost["attempts"] == 1
    assert lost["error"].startswith("worker lost")
    (event,) = [h for h in ops.get(job["id"])["history"] if h["seq"] == seq]
    assert datetime.fromisoformat(lost["next_attempt_at"]) > datetime.fromisoformat(event["at"])  # a backoff
    running = wait_for(ops, job["id"], {"running"})
    assert running["attempts"] == 2
    restarted.kill()


def test_a_lost_lease_with_no_attempts_left_fails_as_worker_lost(
    jobdeck_home: Path, workers: list[WorkerProcess]
) -> None:
    ops = operations(jobdeck_home)
    first = start_worker(workers, jobdeck_home)
    job = ops.create("noop", {"sleep_s": 30}, max_retries=0)
    wait_for(ops, job["id"], {"running"})
    first.kill()
    start_worker(workers, jobdeck_home)
    failed = wait_for(ops, job["id"], {"failed"})
    assert failed["attempts"] == 1 and failed["error"].startswith("worker lost")
    assert [h["type"] for h in failed["history"]] == ["created", "started", "lease_expired"]
    assert failed["history"][-1]["error"].startswith("worker lost")  # `jobdeck show` says why


def test_an_attempt_that_had_done_the_work_is_finished_not_run_again(
    jobdeck_home: Path, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    """The job type tells (``completed_result``) that the lost attempt completed: the job succeeds, not retried."""
    ops = operations(jobdeck_home)
    first = start_worker(workers, jobdeck_home)
    marks = tmp_path / "marks.txt"
    job = ops.create("marker", {"path": str(marks), "linger_s": 30}, max_retries=0)
    wait_for_line(marks)
    first.kill()  # after the work, before its success was recorded
    start_worker(workers, jobdeck_home)
    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["result"]["found_after_a_lost_worker"] is True
    assert marks.read_text() == "attempt 1\n"  # not sent again


def wait_for_history(ops: Operations, job_id: int, kind: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = ops.get(job_id)
        if kind in [h["type"] for h in job["history"]]:
            return job
        assert time.monotonic() < deadline, f"job {job_id} never had a {kind} event: {job['history']}"
        time.sleep(0.02)


def test_a_second_home_on_the_same_ledger_file_does_not_start_a_second_worker(
    tmp_path: Path, workers: list[WorkerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-worker lock lives beside the SQLite file: another data folder pointed at the same ledger with
    JOBDECK_DATABASE_URL finds it taken, and the running worker's jobs stay its own."""
    first_home, second_home = tmp_path / "one", tmp_path / "two"
    first_home.mkdir()
    second_home.mkdir()
    monkeypatch.delenv("JOBDECK_DATABASE_URL", raising=False)
    ops = operations(first_home)
    start_worker(workers, first_home)
    job = ops.create("noop", {"sleep_s": 3})
    wait_for(ops, job["id"], {"running"})

    url = f"sqlite:///{first_home / 'jobdeck.db'}"
    second = WorkerProcess(second_home, {**TYPES_ENV, "JOBDECK_DATABASE_URL": url})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "worker"], env=second.env(), capture_output=True, text=True, timeout=30
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, output
    assert len(output.splitlines()) == 1 and "Traceback" not in output
    assert str(first_home / "jobdeck.db") in output and "already running" in output
    assert (first_home / "jobdeck.db.worker-lock").exists()

    done = wait_for(ops, job["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert "lease_expired" not in [h["type"] for h in done["history"]]


def test_two_workers_share_a_postgresql_ledger_and_a_restart_takes_only_the_dead_one_s_jobs(
    tmp_path: Path, postgres_url: str, workers: list[WorkerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two data folders, one PostgreSQL ledger, a worker each. One is killed and restarted: the restart takes the
    job its dead predecessor held at once, and leaves the other worker's running job alone."""
    from servers import PostgresDatabase

    with PostgresDatabase() as database:
        monkeypatch.setenv("JOBDECK_DATABASE_URL", database.url)
        env = {"JOBDECK_DATABASE_URL": database.url}
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            home.mkdir()
        ops_a, ops_b = operations(homes[0]), operations(homes[1])
        try:
            worker_a = start_worker(workers, homes[0], env)
            start_worker(workers, homes[1], env)
            mine = ops_a.create("noop", {"sleep_s": 30}, max_retries=2)
            theirs = ops_b.create("noop", {"sleep_s": 6}, max_retries=2)
            wait_for(ops_a, mine["id"], {"running"})
            wait_for(ops_b, theirs["id"], {"running"})
            holder = ops_b.get(theirs["id"])["worker_id"]
            worker_a.kill()
            start_worker(workers, homes[0], env)
            lost = snapshot_at(ops_a, lost_event(wait_for_history(ops_a, mine["id"], "lease_expired")))
            assert lost["status"] == "retrying" and lost["error"].startswith("worker lost")
            still = ops_b.get(theirs["id"])
            assert still["status"] == "running" and still["worker_id"] == holder
            done = wait_for(ops_b, theirs["id"], {"succeeded", "failed"})
            assert done["status"] == "succeeded" and done["attempts"] == 1
            assert "lease_expired" not in [h["type"] for h in done["history"]]
        finally:
            for worker in workers:  # before the database is dropped
                worker.stop()
            ops_a.ledger.close()
            ops_b.ledger.close()
