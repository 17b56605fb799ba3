"""The Huey side: what the worker takes off the queue, in what order, at what cost."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.queue.huey_queue import JobQueue


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
