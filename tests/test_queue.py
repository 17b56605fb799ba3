"""The Huey side: priority order of the one-statement dequeue, and no revocation bookkeeping per task."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.queue.huey_queue import JobQueue


def test_dequeue_takes_highest_priority_first_then_fifo(tmp_path: Path) -> None:
    queue = JobQueue(tmp_path / "queue.db")
    for job_id, priority in ((1, 1), (2, 9), (3, 5), (4, 9), (5, 1)):
        queue.enqueue(job_id, priority)
    taken = []
    while (task := queue.huey.dequeue()) is not None:
        taken.append(task.args[0])
    assert taken == [2, 4, 3, 1, 5]
    assert queue.pending_count() == 0


def test_a_task_costs_one_transaction_and_no_revocation_lookups(tmp_path: Path) -> None:
    """Jobdeck never revokes Huey messages, so Huey's per-task revoke read and write must not reach SQLite."""
    ran: list[int] = []
    queue = JobQueue(tmp_path / "queue.db", handler=ran.append)
    queue.enqueue(7, 5)
    statements: list[str] = []
    queue.storage.conn.set_trace_callback(statements.append)
    queue.huey.execute(queue.huey.dequeue())
    queue.storage.conn.set_trace_callback(None)
    assert ran == [7]
    assert not [s for s in statements if " kv " in f" {s} ".replace("\n", " ")]
    assert sum(s.upper().startswith("BEGIN") for s in statements) == 1  # the dequeue, and nothing after the task
    with sqlite3.connect(tmp_path / "queue.db") as conn:
        assert conn.execute("SELECT count(*) FROM task").fetchone()[0] == 0
