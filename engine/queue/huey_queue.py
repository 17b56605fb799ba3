"""The Huey side of Jobdeck: a SQLite queue a worker can be woken on, and the single ``run_job`` task.

Huey only carries job ids. Messages are disposable: the ledger decides whether a job may run (see
``Ledger.claim``), so a duplicate, stale or lost message is harmless, and the worker re-creates every message
from the ledger at start-up.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huey import Huey, SqliteHuey
from huey.api import Task
from huey.storage import SqliteStorage

from engine.storage import checkpoints
from engine.storage.checkpoints import Checkpointer
from engine.storage.database import is_busy, sqlite_begin_immediate, tune_writer, while_busy

TASK_NAME = "jobdeck.run_job"  # stable: queued messages name it; never rename
# What Huey's SqliteStorage.ddl makes (it also drops an index of older versions, ``task_priority_id``).
_SCHEMA = frozenset({"kv", "schedule", "schedule_queue_timestamp", "task", "task_queue_priority_id", "counter"})
IDLE_POLL_S = 1.0  # the fallback for work enqueued by a process that could not wake us


class WakeableSqliteStorage(SqliteStorage):
    """SqliteStorage that hands out several messages per statement (``take``) and that an idle worker waits on
    (``wait_for_work``) instead of Huey's backing-off sleep.

    In-process enqueues and ``wake()`` (other processes send a datagram, see ``engine.events.wake``) release a
    waiting worker at once; an idle worker polls SQLite only once a second.
    """

    def __init__(self, name: str = "huey", filename: str = "huey.db", **kwargs: Any) -> None:
        self._checkpointer: Checkpointer | None = checkpoints.shared(filename)  # before super(): the schema commits
        super().__init__(name, filename, **kwargs)
        self._cond = threading.Condition()
        self._generation = 0
        self.paused = False
        self._schedule_cond = threading.Condition()

    def initialize_schema(self) -> None:
        """Huey's tables, made only if they are missing: Huey's own check runs its DDL in a write transaction, so
        every process that opened the queue (a ``jobdeck list`` too) waited behind any other process's writer."""
        names = {
            name
            for (name,) in self.sql("select name from sqlite_master where type in ('table', 'index')", results=True)
        }
        if names >= _SCHEMA and "task_priority_id" not in names:
            return
        super().initialize_schema()

    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")  # WAL + NORMAL: safe against process crashes
        tune_writer(conn)
        return conn

    @contextlib.contextmanager
    def db(self, commit: bool = False, close: bool = False) -> Iterator[Any]:
        """Huey's own ``db()``, but writers take the lock as the ledger does (``sqlite_begin_immediate``): with
        SQLite's busy handler an enqueue that met a dequeue slept a whole millisecond or more.

        Every SQLite call here releases the GIL and must win it back while holding ``self.lock``, which the
        dispatcher, the job threads (retries) and the request threads all want: the fewer calls, the shorter that
        convoy."""
        with self.lock:
            conn = self.conn
            changes = conn.total_changes
            cursor = conn.cursor()
            try:
                if commit:
                    sqlite_begin_immediate(cursor)
                yield cursor
            except Exception:
                if commit:
                    conn.rollback()
                raise
            else:
                if commit:
                    conn.commit()
            finally:
                wrote = conn.total_changes != changes
                cursor.close()
                if close:
                    conn.close()
                    self._conn = None
        if wrote and self._checkpointer is not None:  # an idle worker's dequeues, which find nothing, start none
            self._checkpointer.poke()

    def sql(self, query: str, params: Any = None, commit: bool = False, results: bool = False) -> Any:
        """Reads take no lock in WAL mode, but may meet a moment of WAL recovery: retry as the writers do."""
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return super().sql(query, params, commit, results)
            except sqlite3.OperationalError as exc:
                if commit or not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.001)

    def take(self, limit: int) -> list[bytes]:
        """Up to ``limit`` messages, highest priority first, in one statement (Huey's dequeue used a read, then a
        select and a delete in a transaction, for each message). Nothing while paused."""
        if self.paused or limit <= 0:
            return []
        with self.db(commit=True) as cursor:
            rows = cursor.execute(_TAKE, (self.name, limit)).fetchall()
        rows.sort(key=lambda row: (-row[0], row[1]))  # RETURNING keeps no order
        return [row[2] for row in rows]

    def peek(self, limit: int) -> list[tuple[int, bytes]]:
        """(row id, message) of the messages ``take`` would take, left in the queue: a read, without the write lock.
        Nothing while paused."""
        if self.paused or limit <= 0:
            return []
        return [(row_id, data) for row_id, data in self.sql(_PEEK, (self.name, limit), results=True)]

    def remove(self, cursor: Any, row_ids: Sequence[int]) -> None:
        """Delete these messages on ``cursor``: another connection's to this file, inside its transaction."""
        cursor.execute(_REMOVE.format(", ".join("?" * len(row_ids))), tuple(row_ids))

    @property
    def generation(self) -> int:
        """Bumped by every ``wake``: read it before looking for work, then ``wait_for_work`` with it."""
        return self._generation

    def wait_for_work(self, generation: int, timeout: float) -> None:
        """Sleep until a ``wake`` after ``generation`` was read (or ``timeout``)."""
        with self._cond:
            if self._generation == generation:
                self._cond.wait(timeout)

    def close(self) -> bool:
        checkpointer, self._checkpointer = self._checkpointer, None  # closed once: it may be the ledger's too
        if checkpointer is not None:
            checkpointer.close()
        return bool(super().close())

    def wake(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """One INSERT that commits on its own (the connection is in autocommit mode): Huey's ran BEGIN, INSERT and
        COMMIT, three calls that each give up the GIL and must win it back."""
        with self.db() as cursor:  # no ``commit``: no BEGIN
            while_busy(lambda: self.insert(cursor, data, priority))
        self.wake()

    def insert(self, cursor: Any, data: bytes, priority: int | None) -> None:
        """The message's row, on ``cursor``: ours, or another connection's to this file inside its transaction."""
        cursor.execute(_ENQUEUE, (self.name, self.to_blob(data), priority or 0))

    def add_to_schedule(self, data: bytes, ts: Any) -> None:
        super().add_to_schedule(data, ts)
        with self._schedule_cond:
            self._schedule_cond.notify_all()

    def next_schedule_timestamp(self) -> float | None:
        """The earliest ETA in the schedule, in the same clock convention as ``add_to_schedule``."""
        rows = self.sql("select min(timestamp) from schedule where queue = ?", (self.name,), results=True)
        return rows[0][0] if rows and rows[0][0] is not None else None

    def wait_for_schedule(self, timeout: float) -> None:
        with self._schedule_cond:
            self._schedule_cond.wait(timeout)

    def pause(self, paused: bool) -> None:
        """A paused worker takes no new messages; running jobs finish."""
        self.paused = paused
        self.wake()


_ENQUEUE = "INSERT INTO task (queue, data, priority) VALUES (?, ?, ?)"
_PEEK = "SELECT id, data FROM task WHERE queue = ? ORDER BY priority DESC, id LIMIT ?"
_REMOVE = "DELETE FROM task WHERE id IN ({})"
_TAKE = (
    "DELETE FROM task WHERE id IN (SELECT id FROM task WHERE queue = ? ORDER BY priority DESC, id LIMIT ?) "
    "RETURNING priority, id, data"
)


@dataclass(frozen=True)
class Peeked:
    """Messages looked at but not yet taken (see ``JobQueue.peek``)."""

    due: list[tuple[int, int]]  # (job id, priority), highest priority first
    later: list[Task]  # for Huey's schedule once removed
    row_ids: list[int]  # every message's row, due or later


class JobQueue:
    """Enqueue job ids; in the worker, take the ids that are due (see ``engine.worker.dispatch``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.huey = SqliteHuey(
            "jobdeck", filename=str(path), storage_class=WakeableSqliteStorage, utc=True, results=False
        )
        self._task = self.huey.task(name=TASK_NAME)(_never_called)
        self._templates: dict[int, _Template] = {}

    @property
    def storage(self) -> WakeableSqliteStorage:
        return self.huey.storage

    def take(self, limit: int) -> list[tuple[int, int]]:
        """(job id, priority) of up to ``limit`` due messages, highest priority first, taken in a transaction of
        their own. A message with a later ETA goes to Huey's schedule instead, as Huey's own worker does with it."""
        due, later = self._sort_out(self.storage.take(limit))
        self.schedule(later)
        return due

    def peek(self, limit: int) -> Peeked:
        """What ``take`` would take, left in the queue for ``remove`` to delete inside a ledger transaction (when
        the queue lives in the ledger's file): the worker's claims and the messages' removal then commit together,
        and a pass that fails leaves the messages where they were."""
        rows = self.storage.peek(limit)
        due, later = self._sort_out([data for _, data in rows])
        return Peeked(due, later, [row_id for row_id, _ in rows])

    def remove(self, peeked: Peeked, cursor: Any) -> None:
        """Delete ``peeked``'s messages on ``cursor`` (the ledger's, in the transaction that claims their jobs);
        once that has committed, ``schedule(peeked.later)``."""
        self.storage.remove(cursor, peeked.row_ids)

    def schedule(self, later: Sequence[Task]) -> None:
        """Messages taken before their ETA: into Huey's schedule, which puts them back in the queue when due."""
        for task in later:
            self.huey.add_schedule(task)

    def _sort_out(self, messages: Sequence[bytes]) -> tuple[list[tuple[int, int]], list[Task]]:
        """(job id, priority) of the due messages, in order, and the others as Huey Tasks (made only for those)."""
        due, later = [], []
        now = self.huey._get_timestamp()
        for data in messages:
            message = self.huey.serializer.deserialize(data)  # Huey's Message tuple
            if message.eta is None or message.eta <= now:
                due.append((int(message.args[0]), int(message.priority or 0)))
            else:
                later.append(self.huey._registry.create_task(message))
        return due, later

    def enqueue(self, job_id: int, priority: int, eta: datetime | None = None) -> None:
        """Priority 0–9, higher first (Huey's own priority order)."""
        self.huey.enqueue(self._message(job_id, priority, eta))

    def write(self, cursor: Any, job_id: int, priority: int, eta: datetime | None = None) -> None:
        """``enqueue`` inside a transaction that another connection to this queue's file has open (the ledger's,
        see ``Operations``): the message commits, or rolls back, with it. Wake the worker after the commit."""
        self.storage.insert(cursor, self._serialized(job_id, priority, eta), priority)

    def lives_in(self, database: Path | None) -> bool:
        """Whether this queue's file is that SQLite database."""
        return database is not None and self.path.resolve() == database.resolve()

    def _serialized(self, job_id: int, priority: int, eta: datetime | None) -> bytes:
        """The message as Huey would pickle it. A message due now is spliced from a template (``_Template``):
        ``write`` runs while the ledger holds the write lock, where building and pickling a Task cost more than
        the row's INSERT."""
        if eta is None and 0 <= job_id < 2**31:
            template = self._templates.get(priority)
            if template is None:
                template = self._templates[priority] = _Template(self.huey, self._message(_JOB_MARK, priority, None))
            return template.fill(job_id)
        return self.huey.serialize_task(self._message(job_id, priority, eta))

    def _message(self, job_id: int, priority: int, eta: datetime | None) -> Task:
        """``eta`` must stay aware: Huey converts a naive one with ``time.mktime``, which drops the microseconds
        and would start a job up to a second early."""
        when = eta.astimezone(UTC) if eta is not None and eta > datetime.now(UTC) else None
        return self._task.s(job_id, priority=priority, eta=when)

    def flush(self) -> None:
        """Drop every message and schedule entry; the worker rebuilds them from the ledger."""
        self.huey.flush()

    def wake(self) -> None:
        self.storage.wake()

    def wait_for_work(self, generation: int, timeout: float = IDLE_POLL_S) -> None:
        self.storage.wait_for_work(generation, timeout)

    def pending_count(self) -> int:
        return self.huey.pending_count() + self.huey.scheduled_count()


_JOB_MARK = 0x7EADBEEF  # a job id no real job has yet, pickled as a four-byte BININT
_ID_MARK = "jobdeck-message-id-template-mark"  # as long as every id a template makes


class _Template:
    """One priority's message, pickled once, with the two values that differ between messages at fixed offsets:
    the message id (a fixed-length string) and the job id (a four-byte integer, which pickle reads whatever its
    value). Filling it in is a byte join; what it makes is exactly what pickling the message would give, except
    that the job id is always four bytes wide (see ``tests/test_queue.py``)."""

    _counter = itertools.count()
    _prefix = secrets.token_hex(8)  # 16 characters: ids stay unique across processes and runs

    def __init__(self, huey: Huey, task: Task) -> None:
        task.id = _ID_MARK
        pickled = huey.serialize_task(task)
        id_mark = bytes([0x8C, len(_ID_MARK)]) + _ID_MARK.encode()  # SHORT_BINUNICODE
        job_mark = b"J" + struct.pack("<i", _JOB_MARK)  # BININT
        if not pickled.count(id_mark) == pickled.count(job_mark) == 1 or pickled.find(id_mark) > pickled.find(job_mark):
            raise RuntimeError("Huey's message format changed: cannot make a message template")
        self._head, rest = pickled.split(id_mark)
        self._middle, self._tail = rest.split(job_mark)
        self._head += id_mark[:2]  # the opcode and the length stay; only the characters change

    def fill(self, job_id: int) -> bytes:
        message_id = f"{self._prefix}{next(self._counter):016x}".encode()
        return b"".join((self._head, message_id, self._middle, b"J", struct.pack("<i", job_id), self._tail))


def _never_called(job_id: int) -> None:
    """The ``run_job`` task's body. Workers take job ids off the queue themselves and never run Huey tasks, but
    Huey needs a function to name the task that carries them."""
    raise RuntimeError(f"run_job({job_id}) was executed by Huey; Jobdeck's worker takes its messages itself")
