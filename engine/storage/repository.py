"""The ledger repository: the only code that changes a job's state.

Every transition is one function and one transaction that also appends one ``job_events`` row carrying a
snapshot of the job; listeners hear of it only after the commit. A transition guards on the current status in
its UPDATE, so two workers (or a worker and an operator) racing on one job cannot both win.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import (
    ClauseElement,
    Executable,
    Insert,
    Update,
    and_,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)

from engine.config import sqlite_file
from engine.errors import InvalidTransition, NotFound
from engine.storage import checkpoints, json_text
from engine.storage.database import open_engine, sqlite_begin_immediate, tune_writer
from engine.storage.group_commit import Batch, GroupCommit
from engine.storage.integrity import damage
from engine.storage.prepared import Bound, Prepared, status_in
from engine.storage.reads import JobQuery, LedgerReads, ids_in
from engine.storage.rows import JOB_FIELDS, iso, job_to_dict, utcnow
from engine.storage.schedules import LedgerSchedules
from engine.storage.status import CANCELABLE, CLAIMABLE, RETRYABLE, STOPPABLE, JobStatus, ScheduleType
from engine.storage.tables import EVENTS, JOBS
from engine.storage.trash import LedgerTrash, new_batch

log = logging.getLogger(__name__)

__all__ = ["EVENTS", "JOBS", "JOB_FIELDS", "Claim", "Ledger", "iso", "job_to_dict", "utcnow"]

# Serialises event inserts on PostgreSQL so that seq order is commit order (replay must never skip a row that
# commits late). SQLite already serialises writers.
_PG_EVENT_LOCK = 0x4A6F6264

Listener = Callable[[list[dict[str, Any]]], None]
# Writes a job's queue message on the cursor of the transaction that makes the job runnable (the queue and the
# ledger share one SQLite file: see ``Operations``), so that the job and its message commit together.
Outbox = Callable[[Any, dict[str, Any]], None]


def no_outbox(_cursor: Any, _job: dict[str, Any]) -> None:
    """The queue is elsewhere (PostgreSQL ledger): the caller enqueues once the transaction has committed."""


T = TypeVar("T")
# jobs the search index takes in one transaction: some 20-40 ms of the write lock (a trigram index costs about
# 50 µs a job)
SEARCH_INDEX_BATCH = 500
Row = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """What a worker gets back when it tries to start a job."""

    job: dict[str, Any] | None
    not_before: datetime | None = None  # the message came early: run again at this time
    priority: int = 0
    staged_path: str | None = None
    checkpoint: dict[str, Any] | None = None


class Tx:
    """One write transaction on the driver's connection; the events it recorded go out after the commit."""

    def __init__(self, ledger: Ledger, cursor: Any) -> None:
        self._ledger = ledger
        self.cursor = cursor
        self.events: list[dict[str, Any]] = []

    def run(self, stmt: Executable | str, params: dict[str, Any] | None = None, build: Any = None) -> list[Row]:
        """Execute a statement; given a key (with ``build`` making the statement), it is compiled only once."""
        ledger = self._ledger
        prepared = ledger.prepare(stmt, build) if isinstance(stmt, str) else Prepared(stmt, ledger.dialect_obj)
        return prepared.execute(self.cursor, params or {})

    def first(self, stmt: Executable | str, params: dict[str, Any] | None = None, build: Any = None) -> Row | None:
        rows = self.run(stmt, params, build)
        return rows[0] if rows else None


class _WriteBatch(Batch):
    """One transaction on the ledger's write connection, for ``GroupCommit``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.wrote = False

    def __enter__(self) -> _WriteBatch:
        # The DBAPI connection itself: SQLAlchemy's pool proxy in front of it only forwards, at some µs a call.
        self.raw = self.ledger._connection().dbapi_connection
        self.changes = self._changes()
        try:
            self.cursor = self.raw.cursor()
            if self.ledger.dialect == "sqlite":
                sqlite_begin_immediate(self.cursor)
        except Exception:
            self.ledger._drop_connection()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                self.raw.commit()
                self.wrote = self._changes() != self.changes  # not a write that matched nothing (an idle heartbeat)
                if self.ledger._checkpointer is not None and self.wrote:
                    self.ledger._checkpointer.poke()
            else:
                self.raw.rollback()
        except Exception:
            # Close the cursor while its connection is still open: closed after it, it would raise "Cannot operate
            # on a closed database" over this error (e.g. "database or disk is full"), hiding the real cause.
            with contextlib.suppress(Exception):
                self.cursor.close()
            self.ledger._drop_connection()  # a broken connection (e.g. PostgreSQL restarted): reconnect next time
            if exc_type is None:
                raise
        else:
            self.cursor.close()

    def new_tx(self) -> Tx:
        return Tx(self.ledger, self.cursor)

    def durable(self) -> None:
        if self.ledger._checkpointer is not None and self.wrote:
            self.ledger._checkpointer.sync_log()  # see ``engine.storage.database.tune_writer``

    def _changes(self) -> int:
        return getattr(self.raw, "total_changes", 0)  # SQLite's count of rows written


class Ledger(LedgerReads, LedgerTrash, LedgerSchedules):
    """The job ledger on one database URL (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self.dialect_obj = self.engine.dialect
        self._listeners: list[Listener] = []
        self._prepared: dict[str, Prepared] = {}
        # Threads of one process write through one connection, in shared transactions; writers in other processes
        # are waited for with short jittered retries (``sqlite_begin_immediate``).
        self._raw: Any = None
        self._group = GroupCommit(self._open_batch, self._committed)
        self._reader: Any = None  # for the worker's reads ahead of a write (``settle``)
        self._reader_lock = threading.Lock()
        self.sqlite_file = sqlite_file(url)
        self._checkpointer = checkpoints.shared(self.sqlite_file) if self.sqlite_file is not None else None
        # Told when SQLite reports the file damaged, on whichever thread met it; the worker checks and stops.
        self.on_damage: Callable[[str], None] | None = None
        event.listen(self.engine, "handle_error", lambda context: self._damaged(context.original_exception))

    def close(self) -> None:
        with self._group.exclusive():
            if self._raw is not None:
                self._raw.close()
                self._raw = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        self.engine.dispose()

    # ---------------------------------------------------------------- observers
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, events: list[dict[str, Any]]) -> None:
        # A broken observer must never break a transition that has already committed.
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("ledger listener %r failed", listener)

    # ---------------------------------------------------------------- plumbing
    def prepare(self, key: str, build: Any) -> Prepared:
        """The statement ``build()`` makes, compiled for this ledger's dialect on first use of ``key``."""
        prepared = self._prepared.get(key)
        if prepared is None:
            stmt = build()
            columns = None
            if isinstance(stmt, tuple):  # (insert statement, the columns it sets)
                stmt, columns = stmt
            prepared = self._prepared[key] = Prepared(stmt, self.dialect_obj, columns)
        return prepared

    def _write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in a write transaction (perhaps shared with other threads' writes: see ``group_commit``);
        its events go to the listeners after the commit."""
        try:
            return self._group.run(fn)
        except Exception as exc:
            self._damaged(exc)
            raise

    def _damaged(self, exc: BaseException) -> None:
        said = damage(exc) if self.on_damage is not None else None
        if said is not None and self.on_damage is not None:
            self.on_damage(said)

    def _committed(self, txs: list[Tx]) -> None:
        """On the group's leader, after the commit: every event of the batch, in seq order, in one call."""
        events = [event for tx in txs for event in tx.events]
        if events:
            self._notify(events)

    def _open_batch(self) -> _WriteBatch:
        return _WriteBatch(self)

    def _connection(self) -> Any:
        """The one driver connection this ledger writes on (writes are serialised by the group commit)."""
        if self._raw is None:
            raw = self.engine.raw_connection()
            if self.dialect == "sqlite":
                tune_writer(raw.driver_connection)
            self._raw = raw
        return self._raw

    def _drop_connection(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.invalidate()

    def _record(self, tx: Tx, job: dict[str, Any], kind: str, **extra: Any) -> dict[str, Any]:
        return self._record_many(tx, [(job, kind, extra)])[0]

    def _record_many(self, tx: Tx, items: Sequence[tuple[dict[str, Any], str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return self._insert_events(tx, self._bind_events(items))

    def _bind_events(self, items: Sequence[tuple[dict[str, Any], str, dict[str, Any]]]) -> _BoundEvents:
        """One event per (job snapshot, type, extra payload), in that order, as bound multi-row INSERTs of up to
        ``EVENT_CHUNK`` rows. The worker binds them before it takes the write lock (``settle``): JSON encoding is
        most of what recording an event costs in Python."""
        at = utcnow()
        chunks = []
        for chunk in _chunks(items):
            params: dict[str, Any] = {}
            for i, (job, kind, extra) in enumerate(chunk):
                params |= {f"j{i}": job["id"], f"t{i}": kind, f"p{i}": {"job": job, **extra}, f"a{i}": at}
            prepared = self.prepare(f"insert-events:{len(chunk)}", partial(self._events_insert, len(chunk)))
            chunks.append((prepared, prepared.parameters(params), chunk))
        return _BoundEvents(iso(at), chunks)

    def _with_id(self, bound: _BoundEvents, job: dict[str, Any]) -> _BoundEvents:
        """A new job's one event, bound for id ``_NO_ID`` before the job had its id, now for ``job``: the id goes
        into the bound JSON as text, so that encoding the snapshot stays outside the write lock."""
        ((prepared, params, ((_, kind, extra),)),) = bound.chunks
        payload = prepared.bound_value(params, "p0")
        if not (isinstance(payload, str) and payload.startswith(_NO_ID_JSON)):  # a driver that takes JSON as objects
            return self._bind_events([(job, kind, extra)])
        payload = f"{_ID_JSON_HEAD}{int(job['id'])}{payload[len(_NO_ID_JSON) - 1 :]}"
        params = prepared.rebind(params, {"j0": job["id"], "p0": payload})
        return _BoundEvents(bound.at, [(prepared, params, [(job, kind, extra)])])

    def _events_insert(self, n: int) -> Executable:
        stmt = insert(EVENTS).values(_event_rows(n))
        columns = (EVENTS.c.seq, EVENTS.c.job_id, EVENTS.c.type)
        return self._returning_key(stmt, *columns) if n == 1 else stmt.returning(*columns)

    def _returning_key(self, stmt: Insert, *columns: Any) -> Insert:
        """A one-row INSERT that returns the new row's key, except on SQLite: there the cursor's ``lastrowid`` is
        that key (see ``_insert_one``), and a RETURNING row cost more to step and fetch than the INSERT itself."""
        return stmt if self.dialect == "sqlite" else stmt.returning(*columns)

    @staticmethod
    def _insert_one(cursor: Any, prepared: Prepared, bound: Bound, key: str) -> int:
        """Run a one-row INSERT made by ``_returning_key``; the new row's ``key``."""
        rows = prepared.execute_bound(cursor, bound)
        return int(rows[0][key]) if prepared.returns_rows else cursor.lastrowid

    def _insert_events(self, tx: Tx, bound: _BoundEvents) -> list[dict[str, Any]]:
        if bound.chunks and self.dialect == "postgresql" and not tx.events:
            tx.run("pg-event-lock", {}, _pg_event_lock)
        events = []
        for prepared, params, chunk in bound.chunks:
            if prepared.returns_rows:
                rows = prepared.execute_bound(tx.cursor, params)
                seqs = {(row["job_id"], row["type"]): row["seq"] for row in rows}  # RETURNING keeps no order
            else:
                ((job, kind, _),) = chunk
                seqs = {(job["id"], kind): self._insert_one(tx.cursor, prepared, params, "seq")}
            for job, kind, extra in chunk:
                seq = seqs[(job["id"], kind)]
                events.append({"seq": seq, "job_id": job["id"], "type": kind, "at": bound.at, "job": job, **extra})
        tx.events.extend(events)
        return events

    def _change_row(
        self,
        tx: Tx,
        job_id: int,
        allowed: Iterable[JobStatus],
        values: dict[str, Any],
        extra_where: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Row | None:
        """A guarded UPDATE … RETURNING. Plain values become bind parameters (``b_<column>``), so with ``key``
        the statement is compiled once and each call only executes it."""

        def build() -> Executable:
            where = and_(JOBS.c.id == bindparam("b_id"), status_in(allowed))
            if extra_where is not None:
                where = and_(where, extra_where)
            bound = {
                col: value if isinstance(value, ClauseElement) else bindparam(f"b_{col}", type_=JOBS.c[col].type)
                for col, value in values.items()
            }
            return _update_jobs().where(where).values(bound).returning(*JOBS.c)

        bind = {f"b_{col}": value for col, value in values.items() if not isinstance(value, ClauseElement)}
        stmt: Executable | str = key if key else build()
        return tx.first(stmt, {"b_id": job_id, **bind, **(params or {})}, build)

    def _change(
        self,
        tx: Tx,
        job_id: int,
        allowed: Iterable[JobStatus],
        values: dict[str, Any],
        extra_where: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        row = self._change_row(tx, job_id, allowed, values, extra_where, key=key, params=params)
        return job_to_dict(row) if row is not None else None

    def _status_of(self, tx: Tx, job_id: int) -> str | None:
        row = tx.first("status-of", {"b_id": job_id}, _status_of)
        return row["status"] if row else None

    def _transition(
        self,
        job_id: int,
        allowed: Sequence[JobStatus],
        values: dict[str, Any],
        kind: str,
        action: str,
        outbox: Outbox = no_outbox,
        **extra: Any,
    ) -> dict[str, Any]:
        """Guarded update + event, or a clear InvalidTransition / NotFound naming the job's actual state."""
        key = f"op:{kind}:{','.join(sorted(values))}"

        def op(tx: Tx) -> dict[str, Any]:
            job = self._change(tx, job_id, allowed, values, key=key)
            if job is None:
                status = self._status_of(tx, job_id)
                if status is None:
                    raise NotFound(job_id)
                raise InvalidTransition(job_id, status, action, _or_list(allowed))
            self._record(tx, job, kind, **extra)
            outbox(tx.cursor, job)
            return job

        return self._write(op)

    # ---------------------------------------------------------------- transitions
    def create(
        self,
        *,
        job_type: str,
        parameters: dict[str, Any],
        priority: int,
        max_retries: int,
        scheduled_time: datetime | None,
        retry_base_s: float | None = None,
        retry_cap_s: float | None = None,
        staged_path: str | None = None,
        outbox: Outbox = no_outbox,
    ) -> dict[str, Any]:
        status = JobStatus.SCHEDULED if scheduled_time else JobStatus.PENDING
        values = {
            "job_type": job_type,
            "parameters": parameters,
            "status": status.value,
            "priority": priority,
            "max_retries": max_retries,
            "attempts": 0,
            "schedule_type": (ScheduleType.SCHEDULED if scheduled_time else ScheduleType.IMMEDIATE).value,
            "scheduled_time": scheduled_time,
            "created_at": utcnow(),
            "retry_base_s": retry_base_s,
            "retry_cap_s": retry_cap_s,
            "staged_path": staged_path,
        }

        # Bound before the write lock is taken, event included, and the snapshot made from the values, not read
        # back: every public field is set here (or NULL), so only the id comes from the database.
        insert_job = self.prepare("insert-job", lambda: (self._returning_key(insert(JOBS), JOBS.c.id), list(values)))
        bound = insert_job.parameters(values)
        snapshot = job_to_dict({field: values.get(field) for field in JOB_FIELDS})
        stored = insert_job.bound_value(bound, "parameters")  # the JSON text, on SQLite
        snapshot["parameters"] = json.loads(stored if isinstance(stored, str) else json_text.dumps(parameters))
        created = self._bind_events([({**snapshot, "id": _NO_ID}, "created", {})])

        def op(tx: Tx) -> dict[str, Any]:
            job = {**snapshot, "id": self._insert_one(tx.cursor, insert_job, bound, "id")}
            self._insert_events(tx, self._with_id(created, job))
            outbox(tx.cursor, job)
            return job

        return self._write(op)

    def claim(self, job_id: int, worker_id: str) -> Claim:
        """pending/scheduled/retrying → running, if due. Counts the attempt and takes the lease."""
        return self.settle(worker_id, [], [job_id])[1][0]

    def succeed(self, job: dict[str, Any], worker_id: str, result: dict[str, Any] | None) -> dict[str, Any] | None:
        """running → succeeded, for the worker that claimed ``job`` (the snapshot its claim returned); ``None`` if
        that worker no longer holds it. The dispatcher records many at once with ``settle``."""
        return self.settle(worker_id, [(job, result)], [])[0][0]

    def settle(
        self,
        worker_id: str,
        succeeded: Sequence[tuple[dict[str, Any], dict[str, Any] | None]],
        to_claim: Sequence[int],
        first: Callable[[Any], None] | None = None,
    ) -> tuple[list[dict[str, Any] | None], list[Claim]]:
        """A worker's bookkeeping for many jobs in one transaction: ``succeed`` each (job as claimed, result), then
        ``claim`` each job id (an id given twice is claimed once). ``first(cursor)`` runs at the start of that
        transaction, on its cursor (the worker removes the claimed jobs' queue messages there: see ``Dispatch``).

        The worker holds the write lock that a submitting process waits for, so everything is prepared before
        the lock is taken: the jobs to claim are read first and their claims worked out from those rows; every
        statement is bound, events included. Inside, three statements run as bound, each guarded: a success only
        if this worker still holds the job, a claim only if the job's ``version`` is still the one read. Should a
        guard miss (an operator canceled the job meanwhile, a lease was swept), that part is worked out again
        inside the lock, where the rows can no longer change.
        """
        now = utcnow()
        finishing = {job["id"]: _success_snapshot(job, result, now) for job, result in succeeded}
        plan = _plan_claims(self._rows_for_claim(to_claim), to_claim, worker_id, now)
        succeed = self._bind_succeed(worker_id, [(job["id"], result) for job, result in succeeded], now)
        claim = self._bind_claim(worker_id, plan.versions, now)
        events = self._bind_events(_settle_events(list(finishing.values()), plan.started, worker_id))

        def op(tx: Tx) -> tuple[list[dict[str, Any] | None], list[Claim]]:
            if first is not None:
                first(tx.cursor)
            held = _run_bound(tx, succeed)
            claimed = _run_bound(tx, claim)
            settled, final = plan, events
            if claimed != set(plan.versions):  # some changed since they were read: decide again, with the lock
                settled = self._claim_again(tx, plan, claimed, worker_id, now)
            done = [job if job_id in held else None for job_id, job in finishing.items()]
            if len(held) != len(finishing) or settled is not plan:
                final = self._bind_events(_settle_events([j for j in done if j], settled.started, worker_id))
            self._insert_events(tx, final)
            return done, settled.claims

        return self._write(op)

    def _rows_for_claim(self, job_ids: Sequence[int]) -> dict[int, Row]:
        """The rows of the jobs to claim, read before the write lock is taken: submitting processes wait for it."""
        return _rows_by_id(job_ids, lambda n, params: self._read(f"claim-read:{n}", partial(_claim_read, n), params))

    def _read(self, key: str, build: Callable[[], Executable], params: dict[str, Any]) -> list[Row]:
        """A prepared read on a connection of its own, outside any write transaction."""
        prepared = self.prepare(key, build)
        with self._reader_lock:
            if self._reader is None:
                self._reader = self.engine.raw_connection()
            raw = self._reader
            try:
                cursor = raw.cursor()
                try:
                    return prepared.execute(cursor, params)
                finally:
                    cursor.close()
                    raw.rollback()  # an open read transaction would pin the WAL (SQLite) or a snapshot (PostgreSQL)
            except Exception as exc:
                self._reader = None
                raw.invalidate()
                self._damaged(exc)
                raise

    def _claim_again(self, tx: Tx, plan: _ClaimPlan, claimed: set[int], worker_id: str, now: datetime) -> _ClaimPlan:
        """The claims as they stand with the write lock held: those whose guard held stay; the others are worked
        out again from their rows as they are now (locked, on PostgreSQL) and claimed if they still may be."""
        missed = [job_id for job_id in plan.versions if job_id not in claimed]
        rows = _rows_by_id(
            missed, lambda n, params: tx.run(f"claim-lock:{n}", params, partial(_claim_read, n, lock=True))
        )
        again = _plan_claims(rows, missed, worker_id, now)
        if _run_bound(tx, self._bind_claim(worker_id, again.versions, now)) != set(again.versions):
            raise RuntimeError("a job changed while its row was locked")
        redone = {job_id: claim for job_id, claim in zip(missed, again.claims, strict=True)}
        claims = [redone.get(c.job["id"], c) if c.job is not None else c for c in plan.claims]
        kept = {job_id: version for job_id, version in plan.versions.items() if job_id in claimed}
        return _ClaimPlan(claims, kept | again.versions)

    def _bind_succeed(
        self, worker_id: str, results: Sequence[tuple[int, dict[str, Any] | None]], finished: datetime
    ) -> list[_Bound]:
        """Success UPDATEs of up to ``EVENT_CHUNK`` jobs, each with its own result, guarded on this worker still
        holding the job. Nothing is read back: while a worker holds a job, no transition but its own (or a lease
        sweep, which the guard sees) changes the job's public fields, so its new snapshot follows from the claim's
        (``_success_snapshot``)."""
        bound = []
        for chunk in _chunks(results):
            params = {"b_worker": worker_id, "b_finished_at": finished}
            for i, (job_id, result) in enumerate(chunk):
                params |= {f"b_id{i}": job_id, f"b_result{i}": result}
            prepared = self.prepare(f"succeed-held:{len(chunk)}", partial(_succeed_held, len(chunk)))
            bound.append((prepared, prepared.parameters(params)))
        return bound

    def _bind_claim(self, worker_id: str, versions: dict[int, int], now: datetime) -> list[_Bound]:
        """Claim UPDATEs of up to ``EVENT_CHUNK`` jobs, each guarded on the version its claim was worked out from."""
        bound = []
        for chunk in _chunks(list(versions.items())):
            params: dict[str, Any] = {"b_now": now, "b_worker": worker_id}
            for i, (job_id, version) in enumerate(chunk):
                params |= {f"b_id{i}": job_id, f"b_version{i}": version}
            prepared = self.prepare(f"claim:{len(chunk)}", partial(_claim, len(chunk)))
            bound.append((prepared, prepared.parameters(params)))
        return bound

    def retry_later(
        self, job_id: int, worker_id: str, error: str, tb: str | None, next_attempt_at: datetime
    ) -> dict[str, Any] | None:
        values = {
            "status": JobStatus.RETRYING.value,
            "error": error,
            "traceback": tb,
            "next_attempt_at": next_attempt_at,
            "heartbeat_at": None,
            "worker_id": None,
        }
        return self._finish(job_id, worker_id, values, "retry_scheduled")

    def fail(self, job_id: int, worker_id: str, error: str, tb: str | None) -> dict[str, Any] | None:
        values = {
            "status": JobStatus.FAILED.value,
            "error": error,
            "traceback": tb,
            "finished_at": utcnow(),
            "next_attempt_at": None,
            "heartbeat_at": None,
        }
        return self._finish(job_id, worker_id, values, "failed")

    def _finish(self, job_id: int, worker_id: str, values: dict[str, Any], kind: str) -> dict[str, Any] | None:
        """End an attempt — only if this worker still holds the job (a swept lease must not be overwritten)."""
        key = f"finish:{kind}"

        def op(tx: Tx) -> dict[str, Any] | None:
            job = self._change(tx, job_id, _RUNNING, values, _HELD_BY, key=key, params={"b_worker": worker_id})
            if job is not None:
                self._record(tx, job, kind)
            return job

        return self._write(op)

    def release(self, job_id: int, worker_id: str) -> dict[str, Any] | None:
        """Graceful shutdown ran out of time: back to pending without counting the attempt; or, if an operator has
        asked the job to stop, canceled."""
        values = {
            "status": JobStatus.PENDING.value,
            "attempts": JOBS.c.attempts - 1,
            "heartbeat_at": None,
            "worker_id": None,
        }
        held = {"b_worker": worker_id}

        def op(tx: Tx) -> dict[str, Any] | None:
            for kind, changes, where in (("released", values, _NOT_ASKED), ("canceled", _stopped_for_cancel(), _ASKED)):
                job = self._change(tx, job_id, _RUNNING, changes, and_(_HELD_BY, where), key=f"release:{kind}",
                                   params=held)  # fmt: skip
                if job is not None:
                    self._record(tx, job, kind)
                    return job
            return None

        return self._write(op)

    def lost_leases(self, lease_s: float, dead_workers: Collection[str] = ()) -> list[Row]:
        """The rows of running jobs whose worker is gone: its lease lapsed (no heartbeat for ``lease_s``), or it is
        held by a worker known to be dead (one that held a worker lock this process holds now).

        Never every running job: on a shared PostgreSQL ledger, other live workers hold theirs.
        """
        cutoff = utcnow() - timedelta(seconds=lease_s)
        lost = or_(JOBS.c.heartbeat_at.is_(None), JOBS.c.heartbeat_at < cutoff)
        if dead_workers:
            lost = or_(lost, JOBS.c.worker_id.in_(list(dead_workers)))
        with self.engine.connect() as conn:
            rows = conn.execute(select(JOBS).where(JOBS.c.status == JobStatus.RUNNING.value, lost)).mappings().all()
        return [dict(row) for row in rows]

    def running_attempts(self) -> list[tuple[int, int]]:
        """(job id, attempt) of every running job: the attempts whose delivery notes are still needed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.id, JOBS.c.attempts).where(JOBS.c.status == JobStatus.RUNNING.value)
            ).all()
        return [(row.id, row.attempts) for row in rows]

    def lease_lost(
        self,
        row: Row,
        status: JobStatus,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """running → retrying (``next_attempt_at``), failed, or succeeded (the lost attempt had done the work): the
        job of a lost worker, as ``lost_leases`` read it. Guarded on the row's version, so a lease that was renewed
        (or a job that moved on) since that read is left alone; ``None`` then."""
        values: dict[str, Any] = {"status": status.value, "heartbeat_at": None, "worker_id": None}
        if status is JobStatus.SUCCEEDED:
            values = {**_succeeded(result, utcnow()), "worker_id": None}
        elif status is JobStatus.FAILED:
            values |= {"error": error, "finished_at": utcnow(), "next_attempt_at": None}
        elif status is JobStatus.CANCELED:
            values |= _stopped_for_cancel()
        else:
            values |= {"error": error, "next_attempt_at": next_attempt_at}
        same = JOBS.c.version == bindparam("b_version", type_=JOBS.c.version.type)
        key = f"lease-lost:{status.value}"

        def op(tx: Tx) -> dict[str, Any] | None:
            job = self._change(tx, row["id"], _RUNNING, values, same, key=key, params={"b_version": row["version"]})
            if job is not None:
                self._record(tx, job, "lease_expired")
            return job

        return self._write(op)

    def cancel(self, job_id: int) -> dict[str, Any]:
        """A waiting job is canceled. A running one belongs to its worker: it is asked to stop (``cancel_requested_at``,
        event ``cancel_requested``) and stays running until its worker ends it (``cancel_running``); asking again
        changes nothing and returns the job as it is."""

        def op(tx: Tx) -> dict[str, Any]:
            job = self._change(tx, job_id, CANCELABLE, _action_values("cancel"), key="op:cancel")
            if job is not None:
                self._record(tx, job, "canceled")
                return job
            job = self._change(tx, job_id, STOPPABLE, _cancel_request(), _NOT_ASKED, key="op:cancel-request")
            if job is not None:
                self._record(tx, job, "cancel_requested")
                return job
            row = tx.first("job-row", {"b_id": job_id}, _job_row)
            if row is None:
                raise NotFound(job_id)
            if row["status"] in STOPPABLE:  # asked before
                return job_to_dict(row)
            raise InvalidTransition(job_id, row["status"], "cancel", _or_list(ACTIONS["cancel"]))

        return self._write(op)

    def cancel_running(self, job_id: int, worker_id: str) -> dict[str, Any] | None:
        """running → canceled, by the worker holding the job, once the run stopped for an operator's request."""
        return self._finish(job_id, worker_id, _stopped_for_cancel(), "canceled")

    def cancel_requests(self, worker_id: str) -> list[int]:
        """This worker's running jobs that an operator asked to stop: ``cancel`` tells the worker of its own
        process at once (an event), this catches requests written by other processes sharing the ledger."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(JOBS.c.id).where(JOBS.c.worker_id == worker_id, status_in(_RUNNING), _ASKED))
            return [row.id for row in rows]

    def retry(self, job_id: int, staged_path: str | None = None, outbox: Outbox = no_outbox) -> dict[str, Any]:
        values = _action_values("retry")
        if staged_path is not None:
            values["staged_path"] = staged_path
        return self._transition(job_id, RETRYABLE, values, "retried", "retry", outbox)

    def retry_all_failed(self, outbox: Outbox = no_outbox) -> list[dict[str, Any]]:

        def op(tx: Tx) -> list[dict[str, Any]]:
            rows = tx.run(
                _update_jobs()
                .where(JOBS.c.status == JobStatus.FAILED.value)
                .values(**_action_values("retry"))
                .returning(*JOBS.c)
            )
            jobs = sorted((job_to_dict(r) for r in rows), key=lambda j: j["id"])
            for job in jobs:
                self._record(tx, job, "retried")
                outbox(tx.cursor, job)
            return jobs

        return self._write(op)

    def run_now(self, job_id: int, outbox: Outbox = no_outbox) -> dict[str, Any]:
        return self._transition(job_id, ACTIONS["run_now"], _action_values("run_now"), "run_now", "run now", outbox)

    def act_on(
        self,
        query: JobQuery,
        action: str,
        *,
        outbox: Outbox = no_outbox,
        skip_types: Sequence[str] = (),
        batch: str | None = None,
    ) -> list[tuple[dict[str, Any], Row]]:
        """``action`` (a key of ``ACTIONS``) on every job ``query`` matches that is in a state it applies to,
        ``BULK_BATCH`` jobs a transaction, in id order, each with its event; returns each job as the action left
        it with its row (``staged_path`` and ``checkpoint``, which the caller releases)."""
        allowed, kind = ACTIONS[action], _ACTION_EVENTS[action]
        trash_batch = batch or new_batch()
        with self.engine.connect() as conn:
            where = and_(self.planned(conn, query).where(), status_in(allowed))
        if skip_types:
            where = and_(where, *(JOBS.c.job_type != name for name in skip_types))
        done: list[tuple[dict[str, Any], Row]] = []
        after: int | None = 0
        while after is not None:

            def op(tx: Tx, after: int = after) -> tuple[list[tuple[dict[str, Any], Row]], int | None]:
                next_ids = select(JOBS.c.id).where(where, JOBS.c.id > after).order_by(JOBS.c.id).limit(BULK_BATCH)
                ids = [row["id"] for row in tx.run(next_ids)]
                if not ids:
                    return [], None
                at_once = CANCELABLE if action == "cancel" else allowed
                target = and_(ids_in(ids), status_in(at_once))
                if action == "delete":
                    stmt: Executable = delete(JOBS).where(target).returning(*JOBS.c)
                else:
                    stmt = _update_jobs().where(target).values(_action_values(action)).returning(*_ACTED_ON)
                rows = [(row, kind) for row in tx.run(stmt)]
                if action == "cancel":  # the running ones are asked to stop (see ``cancel``)
                    ask = _update_jobs().where(ids_in(ids), status_in(STOPPABLE), _NOT_ASKED)
                    rows += [
                        (row, "cancel_requested") for row in tx.run(ask.values(_cancel_request()).returning(*_ACTED_ON))
                    ]
                rows.sort(key=lambda pair: pair[0]["id"])
                if action == "delete":
                    self.to_trash(tx, [row for row, _ in rows], trash_batch)
                jobs = [job_to_dict(row) for row, _ in rows]
                acted = [(job, row) for job, (row, _) in zip(jobs, rows, strict=True)]
                self._record_many(tx, [(job, event, {}) for job, (_, event) in zip(jobs, rows, strict=True)])
                if action in ("retry", "run_now"):
                    for job in jobs:
                        outbox(tx.cursor, job)
                return acted, max(ids)

            rows, after = self._write(op)
            done.extend(rows)
        return done

    def index_search(self, batch: int = SEARCH_INDEX_BATCH, through: int = 2**63 - 1) -> int:
        """Add up to ``batch`` jobs past what the search index covers, and none past id ``through``, to it (SQLite;
        see revision 0008); returns how many. The worker calls it while it returns a full batch."""
        if self.dialect != "sqlite":
            return 0
        with self.engine.connect() as conn:
            if not self.has_search_index(conn):
                return 0
            # Read first: an idle worker asks every few seconds, and a write would take the lock and sync the log.
            upto = conn.exec_driver_sql("SELECT indexed_upto FROM jobs_search_state").scalar()
            newer = "SELECT 1 FROM jobs WHERE id > ? AND id <= ? LIMIT 1"
            if conn.exec_driver_sql(newer, (upto, through)).first() is None:
                return 0

        def op(tx: Tx) -> int:
            cursor = tx.cursor
            upto = cursor.execute("SELECT indexed_upto FROM jobs_search_state").fetchone()[0]
            last, count = cursor.execute(
                "SELECT max(id), count(*) FROM (SELECT id FROM jobs WHERE id > ? AND id <= ? ORDER BY id LIMIT ?)",
                (upto, through, batch),
            ).fetchone()
            if not count:
                return 0
            cursor.execute(
                "INSERT INTO jobs_search_parameters (rowid, parameters)"
                " SELECT id, parameters FROM jobs WHERE id > ? AND id <= ?",
                (upto, last),
            )
            cursor.execute(
                "INSERT INTO jobs_search_outcome (rowid, result, error) SELECT id, result, error FROM jobs"
                " WHERE id > ? AND id <= ? AND (result IS NOT NULL OR error IS NOT NULL)",
                (upto, last),
            )
            cursor.execute("UPDATE jobs_search_state SET indexed_upto = ?", (last,))
            return int(count)

        return self._write(op)

    def delete(self, job_id: int, batch: str | None = None) -> tuple[dict[str, Any], str | None]:
        """Move a job in any state but running to the trash; returns it with its staged file path for cleanup."""
        allowed = ACTIONS["delete"]

        def op(tx: Tx) -> tuple[dict[str, Any], str | None]:
            row = tx.first(
                delete(JOBS).where(JOBS.c.id == job_id, JOBS.c.status != JobStatus.RUNNING.value).returning(*JOBS.c)
            )
            if row is None:
                status = self._status_of(tx, job_id)
                if status is None:
                    raise NotFound(job_id)
                raise InvalidTransition(job_id, status, "delete", _or_list(allowed))
            self.to_trash(tx, [row], batch or new_batch())
            job = job_to_dict(row)
            self._record(tx, job, "deleted")
            return job, row["staged_path"]

        return self._write(op)

    # ---------------------------------------------------------------- worker bookkeeping (no events)
    def heartbeat(self, worker_id: str) -> int:
        stmt = (
            _update_jobs()
            .where(JOBS.c.worker_id == worker_id, JOBS.c.status == JobStatus.RUNNING.value)
            .values(heartbeat_at=utcnow())
        )

        def op(tx: Tx) -> int:
            tx.run(stmt)
            return int(tx.cursor.rowcount)

        return self._write(op)

    def save_checkpoint(self, job_id: int, checkpoint: dict[str, Any] | None) -> None:
        """Resumable progress private to a job type (e.g. a multipart upload id and its finished parts)."""
        params = {"b_id": job_id, "checkpoint": checkpoint}
        self._write(lambda tx: tx.run("save-checkpoint", params, _save_checkpoint))

    def clear_staged(self, job_id: int) -> None:
        stmt = _update_jobs().where(JOBS.c.id == job_id).values(staged_path=None)
        self._write(lambda tx: tx.run(stmt))


_NO_ID = 0  # SQLite and PostgreSQL number rows from 1
# How the JSON of a job's event payload starts: its snapshot's first field is the id, then comes the next field.
_NO_ID_JSON = json_text.dumps({"job": {"id": _NO_ID, "": 0}}).partition('""')[0]
_ID_JSON_HEAD = _NO_ID_JSON.removesuffix(f"{_NO_ID},")
EVENT_CHUNK = 16  # rows per multi-row statement: few statement shapes to compile, and far below SQLite's limits
_RUNNING = (JobStatus.RUNNING,)
_HELD_BY = JOBS.c.worker_id == bindparam("b_worker")
_CLAIMABLE = frozenset(status.value for status in CLAIMABLE)


def _event_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "job_id": bindparam(f"j{i}", type_=EVENTS.c.job_id.type),
            "type": bindparam(f"t{i}", type_=EVENTS.c.type.type),
            "payload": bindparam(f"p{i}", type_=EVENTS.c.payload.type),
            "at": bindparam(f"a{i}", type_=EVENTS.c.at.type),
        }
        for i in range(n)
    ]


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """Up to ``EVENT_CHUNK`` at a time: one multi-row statement each."""
    for start in range(0, len(items), EVENT_CHUNK):
        yield items[start : start + EVENT_CHUNK]


def _ids(n: int) -> Any:
    return JOBS.c.id.in_([bindparam(f"b_id{i}", type_=JOBS.c.id.type) for i in range(n)])


def _update_jobs() -> Update:
    """Every UPDATE of a job starts here: it bumps the row's version (see ``Ledger.settle``)."""
    return update(JOBS).values(version=JOBS.c.version + 1)


def _rows_by_id(job_ids: Sequence[int], read: Callable[[int, dict[str, Any]], list[Row]]) -> dict[int, Row]:
    """Rows by id, ``read(n, params)`` running ``_claim_read(n)`` for each chunk of distinct ids."""
    rows: dict[int, Row] = {}
    for chunk in _chunks(list(dict.fromkeys(job_ids))):
        rows |= {row["id"]: row for row in read(len(chunk), {f"b_id{i}": job_id for i, job_id in enumerate(chunk)})}
    return rows


def _claim_read(n: int, lock: bool = False) -> Executable:
    stmt = select(JOBS).where(_ids(n))
    return stmt.with_for_update() if lock else stmt


def _claim(n: int) -> Executable:
    now = bindparam("b_now", type_=JOBS.c.started_at.type)
    values = {
        "status": JobStatus.RUNNING.value,
        "attempts": JOBS.c.attempts + 1,
        "started_at": now,
        "heartbeat_at": now,
        "worker_id": bindparam("b_worker", type_=JOBS.c.worker_id.type),
        "finished_at": None,
    }
    unchanged = or_(
        *[and_(JOBS.c.id == bindparam(f"b_id{i}"), JOBS.c.version == bindparam(f"b_version{i}")) for i in range(n)]
    )
    return _update_jobs().where(unchanged, status_in(CLAIMABLE)).values(values).returning(JOBS.c.id)


@dataclass(frozen=True)
class _ClaimPlan:
    claims: list[Claim]  # one per id asked for, in order
    versions: dict[int, int]  # the jobs to claim: id → the version their claim was worked out from

    @property
    def started(self) -> list[dict[str, Any]]:
        return [claim.job for claim in self.claims if claim.job is not None]


def _plan_claims(rows: dict[int, Row], job_ids: Sequence[int], worker_id: str, now: datetime) -> _ClaimPlan:
    """What claiming each job at ``now`` does, worked out from its row: the one place that decides whether a job
    may start. An early job (scheduled, or retrying later) tells its time, so its message can come back then."""
    claims: list[Claim] = []
    versions: dict[int, int] = {}
    for job_id in job_ids:
        row = rows.get(job_id)
        if row is None or job_id in versions or row["status"] not in _CLAIMABLE:
            claims.append(Claim(None))
            continue
        due = {JobStatus.SCHEDULED.value: row["scheduled_time"], JobStatus.RETRYING.value: row["next_attempt_at"]}
        not_before = due.get(row["status"])
        if not_before is not None and not_before > now:
            claims.append(Claim(None, not_before, row["priority"]))
            continue
        versions[job_id] = row["version"]
        started = {"status": JobStatus.RUNNING.value, "attempts": row["attempts"] + 1, "started_at": now}
        job = job_to_dict({**row, **started, "finished_at": None})
        claims.append(Claim(job, None, row["priority"], row["staged_path"], row["checkpoint"]))
    return _ClaimPlan(claims, versions)


def _settle_events(
    done: Sequence[dict[str, Any]], started: Sequence[dict[str, Any]], worker_id: str
) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    return [(job, "succeeded", {}) for job in done] + [(job, "started", {"worker_id": worker_id}) for job in started]


_Bound = tuple[Prepared, Any]


@dataclass(frozen=True)
class _BoundEvents:
    at: str
    chunks: list[tuple[Prepared, Any, Sequence[tuple[dict[str, Any], str, dict[str, Any]]]]]


def _run_bound(tx: Tx, bound: list[_Bound]) -> set[int]:
    """Run bound ``… RETURNING id`` statements; the ids they changed."""
    return {row["id"] for prepared, params in bound for row in prepared.execute_bound(tx.cursor, params)}


def _save_checkpoint() -> Executable:
    return _update_jobs().where(JOBS.c.id == bindparam("b_id")).values(checkpoint=bindparam("checkpoint"))


def _status_of() -> Executable:
    return select(JOBS.c.status).where(JOBS.c.id == bindparam("b_id"))


def _succeeded(result: dict[str, Any] | None, finished: Any) -> dict[str, Any]:
    return {
        "status": JobStatus.SUCCEEDED.value,
        "result": result,
        "error": None,
        "traceback": None,
        "finished_at": finished,
        "next_attempt_at": None,
        "heartbeat_at": None,
        "staged_path": None,
    }


_SUCCESS_FIELDS = ("status", "result", "error", "next_attempt_at")  # public, besides finished_at (as text there)


def _success_snapshot(job: dict[str, Any], result: dict[str, Any] | None, finished: datetime) -> dict[str, Any]:
    """The claimed job's snapshot after ``_succeeded``: what reading the row back would give."""
    values = _succeeded(result, finished)
    return {**job, **{f: values[f] for f in _SUCCESS_FIELDS}, "finished_at": iso(finished)}


def _succeed_held(n: int) -> Executable:
    """``succeed`` for the worker holding the jobs, each with its own result (see ``Ledger._succeed_held``)."""
    values = _succeeded(None, bindparam("b_finished_at", type_=JOBS.c.finished_at.type))
    result_type = JOBS.c.result.type
    values["result"] = case(
        *[(JOBS.c.id == bindparam(f"b_id{i}"), bindparam(f"b_result{i}", type_=result_type)) for i in range(n)]
    )
    where = and_(_ids(n), status_in(_RUNNING), _HELD_BY)
    return _update_jobs().where(where).values(values).returning(JOBS.c.id)


def _pg_event_lock() -> Executable:
    return select(func.pg_advisory_xact_lock(_PG_EVENT_LOCK))


# What an operator may do to a job, and in which states (DESIGN.md, "States and transitions"): the one place the
# CLI, the control channel and the desktop (through ``Operations.rules``) learn it from.
ACTIONS: dict[str, tuple[JobStatus, ...]] = {
    "retry": RETRYABLE,
    "cancel": (*CANCELABLE, *STOPPABLE),  # a running job is asked to stop (see ``Ledger.cancel``)
    "run_now": (JobStatus.SCHEDULED, JobStatus.RETRYING),  # a retrying job's next attempt, without its wait
    "delete": tuple(s for s in JobStatus if s is not JobStatus.RUNNING),
}
_ACTION_EVENTS = {"retry": "retried", "cancel": "canceled", "run_now": "run_now", "delete": "deleted"}
BULK_BATCH = 1000  # jobs a bulk action changes in one transaction: the write lock is never held long
# what a bulk action reads back from its UPDATE: the job JSON's fields and what the caller releases
_ACTED_ON = [JOBS.c[name] for name in (*JOB_FIELDS, "staged_path", "checkpoint")]


_ASKED = JOBS.c.cancel_requested_at.is_not(None)
_NOT_ASKED = JOBS.c.cancel_requested_at.is_(None)


def _cancel_request() -> dict[str, Any]:
    return {"cancel_requested_at": utcnow()}


def _stopped_for_cancel() -> dict[str, Any]:
    """A running job its worker ends for an operator's cancel request: canceled, as a waiting job is, and let go."""
    return {**_action_values("cancel"), "heartbeat_at": None, "worker_id": None}


def _job_row() -> Executable:
    return select(JOBS).where(JOBS.c.id == bindparam("b_id"))


def _action_values(action: str) -> dict[str, Any]:
    if action == "cancel":
        return {"status": JobStatus.CANCELED.value, "finished_at": utcnow(), "next_attempt_at": None}
    if action == "run_now":  # the attempts so far still count: this is the next one, sooner
        return {"status": JobStatus.PENDING.value, "next_attempt_at": None}
    return {
        "status": JobStatus.PENDING.value,
        "attempts": 0,
        "error": None,
        "traceback": None,
        "result": None,
        "started_at": None,
        "finished_at": None,
        "next_attempt_at": None,
        "checkpoint": None,
        "cancel_requested_at": None,
    }


def _or_list(statuses: Iterable[JobStatus]) -> str:
    names = [s.value for s in statuses]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
