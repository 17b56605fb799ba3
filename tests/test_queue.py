"""The Huey side: what the worker takes off the queue, in what order, at what cost."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.queue.huey_queue import JobQueue

EMAIL = {"recipient": "a@example.com", "subject": "Hi", "body": "Hello"}


def task_rows(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT count(*) FROM task").fetchone()[0]


def test_take_gives_highest_priority_first_then_fifo(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    for job_id, priority in ((1, 1), (2, 9), (3, 5), (4, 9), (5, 1), (6, 5)):
        queue.enqueue(job_id, priority)
    taken = queue.take(4) + queue.take(4)
    assert taken == [(2, 9), (4, 9), (3, 5), (6, 5), (1, 1), (5, 1)]
    assert queue.take(4) == []
    assert queue.pending_count() == 0


def test_taking_several_costs_one_transaction_and_no_revocation_lookups(tmp_path: Path) -> None:
    """Jobdeck never revokes Huey messages, and takes a batch in one statement."""
    queue = JobQueue(tmp_path / "queue.db")
    for job_id in range(1, 6):
        queue.enqueue(job_id, 5)
    statements: list[str] = []
    queue.storage.conn.set_trace_callback(statements.append)
    taken = queue.take(5)
    queue.storage.conn.set_trace_callback(None)
    assert [job_id for job_id, _ in taken] == [1, 2, 3, 4, 5]
    assert not [s for s in statements if " kv " in f" {s} ".replace("\n", " ")]
    assert sum(s.upper().startswith("BEGIN") for s in statements) == 1
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        assert conn.execute("SELECT count(*) FROM task").fetchone()[0] == 0


def test_a_message_for_later_goes_to_the_schedule_not_to_the_worker(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue(1, 5, datetime.now(UTC) + timedelta(hours=1))
    queue.enqueue(2, 5)
    assert queue.take(5) == [(2, 5)]
    assert queue.huey.scheduled_count() == 1
    assert queue.pending_count() == 1


def test_a_written_message_is_what_huey_would_have_pickled_with_a_fresh_id(tmp_path: Path) -> None:
    """The outbox splices messages from a template; Huey must read them as its own, for any job id."""
    queue = JobQueue(tmp_path / "queue.db")
    conn = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
    job_ids = [1, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**40]
    for n, job_id in enumerate(job_ids):
        queue.write(conn.cursor(), job_id, n % 10)
    later = datetime.now(UTC) + timedelta(hours=1)
    queue.write(conn.cursor(), 7, 3, later)
    rows = conn.execute("SELECT data, priority FROM task ORDER BY id").fetchall()
    tasks = [queue.huey.deserialize_task(data) for data, _ in rows]
    expected = [(j, n % 10, None) for n, j in enumerate(job_ids)] + [(7, 3, later)]
    message = queue.huey._registry.create_message
    for task, (job_id, priority, eta) in zip(tasks, expected, strict=True):
        assert task.args == (job_id,) and task.priority == priority
        assert message(task)._replace(id="") == message(queue._message(job_id, priority, eta))._replace(id="")
    assert tasks[-1].eta == later.astimezone(UTC).replace(tzinfo=None)  # Huey keeps UTC times naive
    assert [priority for _, priority in rows] == [priority for _, priority, _ in expected]
    assert len({task.id for task in tasks}) == len(tasks)
    assert queue.take(20) == sorted(
        [(j, n % 10) for n, j in enumerate(job_ids)], key=lambda taken: (-taken[1], job_ids.index(taken[0]))
    )
    conn.close()


def test_peeked_messages_leave_the_queue_only_with_the_transaction_that_removes_them(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    for job_id, priority in ((1, 1), (2, 9), (3, 5)):
        queue.enqueue(job_id, priority)
    queue.enqueue(4, 9, datetime.now(UTC) + timedelta(hours=1))  # early: Huey's schedule takes it once removed
    peeked = queue.peek(3)
    assert peeked.due == [(2, 9), (3, 5)] and [task.args for task in peeked.later] == [(4,)]
    assert task_rows(tmp_path / "queue.db") == 4  # only looked at
    conn = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    queue.remove(peeked, conn.cursor())
    conn.execute("ROLLBACK")
    assert task_rows(tmp_path / "queue.db") == 4 and queue.peek(3) == peeked
    conn.execute("BEGIN IMMEDIATE")
    queue.remove(peeked, conn.cursor())
    conn.execute("COMMIT")
    queue.schedule(peeked.later)
    assert queue.take(5) == [(1, 1)]
    assert queue.huey.scheduled_count() == 1
    conn.close()


def test_a_paused_queue_gives_nothing_and_keeps_its_messages(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue(1, 5)
    queue.storage.pause(True)
    assert queue.take(5) == []
    queue.storage.pause(False)
    assert queue.take(5) == [(1, 5)]


def test_an_enqueue_is_one_statement_and_waits_out_another_writer(tmp_path: Path) -> None:
    """An enqueue commits on its own (no BEGIN/COMMIT round trips), and while another connection holds the write
    lock it waits for it rather than failing (the queue's connection has no busy timeout of SQLite's)."""
    queue = JobQueue(tmp_path / "queue.db")
    queue.enqueue(1, 5)
    statements: list[str] = []
    queue.storage.conn.set_trace_callback(statements.append)
    queue.enqueue(2, 5)
    assert [s.split()[0].upper() for s in statements] == ["INSERT"]
    other = sqlite3.connect(tmp_path / "queue.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.2, other.commit)
    releaser.start()
    try:
        started = time.monotonic()
        queue.enqueue(3, 5)
        assert time.monotonic() - started >= 0.15  # it waited for the lock
    finally:
        releaser.join()
        other.close()
    assert [job_id for job_id, _ in queue.take(5)] == [1, 2, 3]


def test_a_job_and_its_message_commit_in_one_transaction(ops: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default queue lives in the ledger's SQLite file, and the transaction that makes a job runnable writes
    its message: when the message's own statement fails, neither it nor the job (nor the job's event) is left."""
    assert ops.paths.queue == ops.paths.database
    first = ops.create("send_email", EMAIL)
    assert task_rows(ops.paths.database) == 1
    insert = ops.queue.storage.insert

    def insert_then_fail(cursor: Any, data: bytes, priority: int | None) -> None:
        insert(cursor, data, priority)
        raise RuntimeError("the disk filled up")

    monkeypatch.setattr(ops.queue.storage, "insert", insert_then_fail)
    with pytest.raises(RuntimeError, match="disk filled up"):
        ops.create("send_email", EMAIL)
    assert [job["id"] for job in ops.list()["jobs"]] == [first["id"]]
    assert ops.ledger.last_seq() == 1
    assert task_rows(ops.paths.database) == 1
    monkeypatch.undo()
    assert ops.queue.take(5) == [(first["id"], 5)]


def test_run_now_and_retry_write_their_message_with_the_transition(ops: Any) -> None:
    scheduled = ops.create("send_email", EMAIL, scheduled_time=datetime.now(UTC) + timedelta(hours=1))
    assert ops.queue.take(5) == [] and ops.queue.huey.scheduled_count() == 1  # its message waits for its time
    ops.run_now(scheduled["id"])
    assert ops.queue.take(5) == [(scheduled["id"], 5)]
    ops.cancel(scheduled["id"])
    ops.retry(scheduled["id"])
    assert ops.queue.take(5) == [(scheduled["id"], 5)]


def test_with_a_postgresql_ledger_the_queue_has_its_own_file(
    jobdeck_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    monkeypatch.setenv("JOBDECK_DATABASE_URL", postgres_url)
    ops = Operations(Paths(jobdeck_home), store=MemoryStore())
    try:
        assert ops.paths.queue == jobdeck_home / "queue.db"
        job = ops.create("send_email", EMAIL, priority=7)
        assert ops.queue.take(5) == [(job["id"], 7)]  # enqueued once the ledger had committed
    finally:
        ops.ledger.close()
        ops.queue.storage.close()
