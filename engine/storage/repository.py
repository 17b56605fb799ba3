"""The ledger repository: the only code that changes a job's state.

Every transition is one function and one transaction that also appends one ``job_events`` row carrying a
snapshot of the job; listeners hear of it only after the commit. A transition guards on the current status in
its UPDATE, so two workers (or a worker and an operator) racing on one job cannot both win.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ClauseElement,
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from engine.errors import InvalidTransition, NotFound
from engine.storage.database import open_engine
from engine.storage.reads import LedgerReads
from engine.storage.rows import EVENTS, JOB_FIELDS, JOBS, iso, job_to_dict, utcnow
from engine.storage.status import CANCELABLE, CLAIMABLE, RETRYABLE, JobStatus, ScheduleType

log = logging.getLogger(__name__)

__all__ = ["EVENTS", "JOBS", "JOB_FIELDS", "Claim", "Ledger", "iso", "job_to_dict", "utcnow"]

# Serialises event inserts on PostgreSQL so that seq order is commit order (replay must never skip a row that
# commits late). SQLite already serialises writers.
_PG_EVENT_LOCK = 0x4A6F6264

Listener = Callable[[list[dict[str, Any]]], None]


@dataclass(frozen=True)
class Claim:
    """What a worker gets back when it tries to start a job."""

    job: dict[str, Any] | None
    not_before: datetime | None = None  # the message came early: run again at this time
    priority: int = 0
    staged_path: str | None = None
    checkpoint: dict[str, Any] | None = None


class Ledger(LedgerReads):
    """The job ledger on one database URL (SQLite file or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(write=True)
        self._listeners: list[Listener] = []
        # SQLite has one writer at a time; its busy handler waits by sleeping in growing steps (1, 2, 5… ms),
        # so threads of one process queue on a mutex instead. Other processes still meet the busy timeout.
        self._write_lock: AbstractContextManager[Any] = threading.Lock() if self.dialect == "sqlite" else nullcontext()

    def close(self) -> None:
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
    @contextmanager
    def _transaction(self) -> Iterator[tuple[Connection, list[dict[str, Any]]]]:
        events: list[dict[str, Any]] = []
        with self._write_lock, self._writer.begin() as conn:
            yield conn, events
        if events:
            self._notify(events)

    def _record(
        self, conn: Connection, events: list[dict[str, Any]], job: dict[str, Any], kind: str, **extra: Any
    ) -> dict[str, Any]:
        if self.dialect == "postgresql" and not events:
            conn.execute(select(func.pg_advisory_xact_lock(_PG_EVENT_LOCK)))
        at = utcnow()
        payload = {"job": job, **extra}
        seq = conn.execute(
            _INSERT_EVENT, {"job_id": job["id"], "type": kind, "payload": payload, "at": at}
        ).scalar_one()
        event = {"seq": seq, "job_id": job["id"], "type": kind, "at": iso(at), **payload}
        events.append(event)
        return event

    def _change_row(
        self,
        conn: Connection,
        job_id: int,
        allowed: Iterable[JobStatus],
        values: dict[str, Any],
        extra_where: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Row[Any] | None:
        """A guarded UPDATE … RETURNING. With ``key`` the statement is built once and reused: plain values become
        bind parameters (``b_<column>``), so per-call cost is execution only — statement construction was most
        of a job's overhead in the queue benchmark."""
        stmt = _STATEMENTS.get(key) if key else None
        if stmt is None:
            where = and_(JOBS.c.id == bindparam("b_id"), JOBS.c.status.in_([s.value for s in allowed]))
            if extra_where is not None:
                where = and_(where, extra_where)
            bound = {
                col: value if isinstance(value, ClauseElement) else bindparam(f"b_{col}", type_=JOBS.c[col].type)
                for col, value in values.items()
            }
            stmt = update(JOBS).where(where).values(bound).returning(*JOBS.c)
            if key:
                _STATEMENTS[key] = stmt
        bind = {f"b_{col}": value for col, value in values.items() if not isinstance(value, ClauseElement)}
        return conn.execute(stmt, {"b_id": job_id, **bind, **(params or {})}).first()

    def _change(
        self,
        conn: Connection,
        job_id: int,
        allowed: Iterable[JobStatus],
        values: dict[str, Any],
        extra_where: Any = None,
        *,
        key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        row = self._change_row(conn, job_id, allowed, values, extra_where, key=key, params=params)
        return job_to_dict(row) if row is not None else None

    def _transition(
        self,
        job_id: int,
        allowed: Sequence[JobStatus],
        values: dict[str, Any],
        kind: str,
        action: str,
        **extra: Any,
    ) -> dict[str, Any]:
        """Guarded update + event, or a clear InvalidTransition / NotFound naming the job's actual state."""
        with self._transaction() as (conn, events):
            job = self._change(conn, job_id, allowed, values, key=f"op:{kind}:{','.join(sorted(values))}")
            if job is None:
                status = conn.execute(select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar()
                if status is None:
                    raise NotFound(job_id)
                raise InvalidTransition(job_id, status, action, _or_list(allowed))
            self._record(conn, events, job, kind, **extra)
        return job

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
    ) -> dict[str, Any]:
        now = utcnow()
        status = JobStatus.SCHEDULED if scheduled_time else JobStatus.PENDING
        with self._transaction() as (conn, events):
            row = conn.execute(
                _INSERT_JOB,
                {
                    "job_type": job_type,
                    "parameters": parameters,
                    "status": status.value,
                    "priority": priority,
                    "max_retries": max_retries,
                    "attempts": 0,
                    "schedule_type": (ScheduleType.SCHEDULED if scheduled_time else ScheduleType.IMMEDIATE).value,
                    "scheduled_time": scheduled_time,
                    "created_at": now,
                    "retry_base_s": retry_base_s,
                    "retry_cap_s": retry_cap_s,
                    "staged_path": staged_path,
                },
            ).one()
            job = job_to_dict(row)
            self._record(conn, events, job, "created")
        return job

    def claim(self, job_id: int, worker_id: str, *, tolerance_s: float = 0.0) -> Claim:
        """pending/scheduled/retrying → running, if due. Counts the attempt and takes the lease."""
        now = utcnow()
        due = bindparam("b_due", type_=JOBS.c.scheduled_time.type)
        is_due = and_(
            or_(JOBS.c.status != JobStatus.SCHEDULED.value, JOBS.c.scheduled_time <= due),
            or_(JOBS.c.status != JobStatus.RETRYING.value, JOBS.c.next_attempt_at <= due),
        )
        values = {
            "status": JobStatus.RUNNING.value,
            "attempts": JOBS.c.attempts + 1,
            "started_at": now,
            "heartbeat_at": now,
            "worker_id": worker_id,
            "finished_at": None,
        }
        with self._transaction() as (conn, events):
            claimed = self._change_row(
                conn, job_id, CLAIMABLE, values, is_due, key="claim",
                params={"b_due": now + timedelta(seconds=tolerance_s)},
            )  # fmt: skip
            if claimed is None:
                row = conn.execute(
                    select(JOBS.c.status, JOBS.c.priority, JOBS.c.scheduled_time, JOBS.c.next_attempt_at).where(
                        JOBS.c.id == job_id
                    )
                ).first()
                if row is not None and row.status == JobStatus.SCHEDULED.value:
                    return Claim(None, row.scheduled_time, row.priority)
                if row is not None and row.status == JobStatus.RETRYING.value:
                    return Claim(None, row.next_attempt_at, row.priority)
                return Claim(None)
            job = job_to_dict(claimed)
            self._record(conn, events, job, "started", worker_id=worker_id)
        return Claim(job, None, claimed.priority, claimed.staged_path, claimed.checkpoint)

    def succeed(self, job_id: int, worker_id: str, result: dict[str, Any] | None) -> dict[str, Any] | None:
        values = {
            "status": JobStatus.SUCCEEDED.value,
            "result": result,
            "error": None,
            "traceback": None,
            "finished_at": utcnow(),
            "next_attempt_at": None,
            "heartbeat_at": None,
            "staged_path": None,
        }
        return self._finish(job_id, worker_id, values, "succeeded")

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
        with self._transaction() as (conn, events):
            job = self._change(
                conn, job_id, [JobStatus.RUNNING], values, JOBS.c.worker_id == bindparam("b_worker"),
                key=f"finish:{kind}", params={"b_worker": worker_id},
            )  # fmt: skip
            if job is not None:
                self._record(conn, events, job, kind)
        return job

    def release(self, job_id: int, worker_id: str) -> dict[str, Any] | None:
        """Graceful shutdown ran out of time: back to pending without counting the attempt."""
        values = {
            "status": JobStatus.PENDING.value,
            "attempts": JOBS.c.attempts - 1,
            "heartbeat_at": None,
            "worker_id": None,
        }
        return self._finish(job_id, worker_id, values, "released")

    def recover_expired(self, lease_s: float, *, worker_id: str | None = None) -> list[dict[str, Any]]:
        """Running jobs whose lease lapsed (a dead worker): back to pending, or failed once attempts run out.

        With ``worker_id`` given, that worker's jobs are recovered whatever their lease (a restarted worker that
        holds the single-worker lock knows its previous incarnation is dead).
        """
        cutoff = utcnow() - timedelta(seconds=lease_s)
        lapsed = or_(JOBS.c.heartbeat_at.is_(None), JOBS.c.heartbeat_at < cutoff)
        if worker_id is not None:
            lapsed = or_(lapsed, JOBS.c.worker_id != worker_id)
        with self.engine.connect() as conn:
            ids = (
                conn.execute(select(JOBS.c.id).where(JOBS.c.status == JobStatus.RUNNING.value, lapsed)).scalars().all()
            )
        recovered = []
        for job_id in ids:
            job = self._recover_one(job_id, lapsed)
            if job is not None:
                recovered.append(job)
        return recovered

    def _recover_one(self, job_id: int, lapsed: Any) -> dict[str, Any] | None:
        exhausted = JOBS.c.attempts > JOBS.c.max_retries
        values = {
            "status": case((exhausted, JobStatus.FAILED.value), else_=JobStatus.PENDING.value),
            "error": case((exhausted, "worker lost: the worker stopped while running this job"), else_=JOBS.c.error),
            "finished_at": case((exhausted, utcnow()), else_=None),
            "heartbeat_at": None,
            "worker_id": None,
        }
        with self._transaction() as (conn, events):
            job = self._change(conn, job_id, [JobStatus.RUNNING], values, lapsed)
            if job is not None:
                self._record(conn, events, job, "lease_expired")
        return job

    def cancel(self, job_id: int) -> dict[str, Any]:
        values = {"status": JobStatus.CANCELED.value, "finished_at": utcnow(), "next_attempt_at": None}
        return self._transition(job_id, CANCELABLE, values, "canceled", "cancel")

    def retry(self, job_id: int, staged_path: str | None = None) -> dict[str, Any]:
        values = _RETRY_VALUES()
        if staged_path is not None:
            values["staged_path"] = staged_path
        return self._transition(job_id, RETRYABLE, values, "retried", "retry")

    def retry_all_failed(self) -> list[dict[str, Any]]:
        with self._transaction() as (conn, events):
            rows = conn.execute(
                update(JOBS).where(JOBS.c.status == JobStatus.FAILED.value).values(**_RETRY_VALUES()).returning(*JOBS.c)
            ).all()
            jobs = sorted((job_to_dict(r) for r in rows), key=lambda j: j["id"])
            for job in jobs:
                self._record(conn, events, job, "retried")
        return jobs

    def run_now(self, job_id: int) -> dict[str, Any]:
        values = {"status": JobStatus.PENDING.value}
        return self._transition(job_id, [JobStatus.SCHEDULED], values, "run_now", "run now")

    def delete(self, job_id: int) -> tuple[dict[str, Any], str | None]:
        """Remove a job in any state but running; returns it with its staged file path for cleanup."""
        allowed = [s for s in JobStatus if s is not JobStatus.RUNNING]
        with self._transaction() as (conn, events):
            row = conn.execute(
                delete(JOBS).where(JOBS.c.id == job_id, JOBS.c.status != JobStatus.RUNNING.value).returning(*JOBS.c)
            ).first()
            if row is None:
                status = conn.execute(select(JOBS.c.status).where(JOBS.c.id == job_id)).scalar()
                if status is None:
                    raise NotFound(job_id)
                raise InvalidTransition(job_id, status, "delete", _or_list(allowed))
            job = job_to_dict(row)
            self._record(conn, events, job, "deleted")
        return job, row.staged_path

    # ---------------------------------------------------------------- worker bookkeeping (no events)
    def heartbeat(self, worker_id: str) -> int:
        with self._write_lock, self._writer.begin() as conn:
            return conn.execute(
                update(JOBS)
                .where(JOBS.c.worker_id == worker_id, JOBS.c.status == JobStatus.RUNNING.value)
                .values(heartbeat_at=utcnow())
            ).rowcount

    def save_checkpoint(self, job_id: int, checkpoint: dict[str, Any] | None) -> None:
        """Resumable progress private to a job type (e.g. a multipart upload id and its finished parts)."""
        with self._write_lock, self._writer.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(checkpoint=checkpoint))

    def clear_staged(self, job_id: int) -> None:
        with self._write_lock, self._writer.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(staged_path=None))


_STATEMENTS: dict[str, Any] = {}
_INSERT_JOB = insert(JOBS).returning(*JOBS.c)
_INSERT_EVENT = insert(EVENTS).returning(EVENTS.c.seq)


def _RETRY_VALUES() -> dict[str, Any]:
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
    }


def _or_list(statuses: Iterable[JobStatus]) -> str:
    names = [s.value for s in statuses]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
