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
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ClauseElement,
    Connection,
    Row,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from engine.errors import InvalidTransition, NotFound
from engine.storage.database import open_engine
from engine.storage.status import CANCELABLE, CLAIMABLE, RETRYABLE, JobStatus, ScheduleType
from engine.storage.tables import Job, JobEvent

log = logging.getLogger(__name__)

JOBS = Job.__table__
EVENTS = JobEvent.__table__
# Serialises event inserts on PostgreSQL so that seq order is commit order (replay must never skip a row that
# commits late). SQLite already serialises writers.
_PG_EVENT_LOCK = 0x4A6F6264

# Fields of the job JSON that the CLI prints, events carry and the GUI shows, in that order.
JOB_FIELDS = (
    "id", "job_type", "status", "priority", "parameters", "attempts", "max_retries", "schedule_type",
    "scheduled_time", "next_attempt_at", "created_at", "started_at", "finished_at", "result", "error",
)  # fmt: skip
_TIME_FIELDS = ("scheduled_time", "next_attempt_at", "created_at", "started_at", "finished_at")

Listener = Callable[[list[dict[str, Any]]], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def job_to_dict(row: Row[Any] | Any) -> dict[str, Any]:
    """The public job JSON: times are ISO 8601 with a UTC offset."""
    data = row._mapping if isinstance(row, Row) else row
    out = {field: data[field] for field in JOB_FIELDS}
    for field in _TIME_FIELDS:
        out[field] = iso(out[field])
    return out


@dataclass(frozen=True)
class Claim:
    """What a worker gets back when it tries to start a job."""

    job: dict[str, Any] | None
    not_before: datetime | None = None  # the message came early: run again at this time
    priority: int = 0
    staged_path: str | None = None
    checkpoint: dict[str, Any] | None = None


class Ledger:
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

    # ---------------------------------------------------------------- reads
    def get_row(self, job_id: int) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise NotFound(job_id)
        return row

    def get(self, job_id: int) -> dict[str, Any]:
        row = self.get_row(job_id)
        job = job_to_dict(row)
        job["traceback"] = row.traceback
        job["heartbeat_at"] = iso(row.heartbeat_at)
        job["worker_id"] = row.worker_id
        job["history"] = self.history(job_id)
        return job

    def history(self, job_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(EVENTS).where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.seq)).all()
        return [
            {
                "seq": r.seq,
                "type": r.type,
                "at": iso(r.at),
                "status": r.payload["job"]["status"],
                "attempts": r.payload["job"]["attempts"],
                "error": r.payload["job"]["error"] if r.type in ("failed", "retry_scheduled") else None,
            }
            for r in rows
        ]

    def list(
        self,
        *,
        status: Sequence[str] | None = None,
        job_type: str | None = None,
        search: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        conditions = []
        if status:
            conditions.append(JOBS.c.status.in_(list(status)))
        if job_type:
            conditions.append(JOBS.c.job_type == job_type)
        if search:
            pattern = f"%{_escape_like(search.lower())}%"
            conditions.append(
                or_(
                    *(
                        func.lower(cast(col, Text)).like(pattern, escape="\\")
                        for col in (JOBS.c.parameters, JOBS.c.result, JOBS.c.error)
                    )
                )
            )
        if created_after:
            conditions.append(JOBS.c.created_at >= created_after)
        if created_before:
            conditions.append(JOBS.c.created_at < created_before)
        where = and_(*conditions) if conditions else text("1=1")
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(JOBS).where(where)).scalar_one()
            rows = conn.execute(select(JOBS).where(where).order_by(JOBS.c.id.desc()).limit(limit).offset(offset)).all()
        return [job_to_dict(r) for r in rows], total

    def waiting(self) -> list[Row[Any]]:
        """Jobs that should have a queue message: what the worker re-enqueues at start-up."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(JOBS.c.id, JOBS.c.status, JOBS.c.priority, JOBS.c.scheduled_time, JOBS.c.next_attempt_at).where(
                    JOBS.c.status.in_([s.value for s in CLAIMABLE])
                )
            ).all()

    def running_ids(self, worker_id: str) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(JOBS.c.id).where(JOBS.c.worker_id == worker_id, JOBS.c.status == JobStatus.RUNNING.value)
                ).scalars()
            )

    def events_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(EVENTS).where(EVENTS.c.seq > seq).order_by(EVENTS.c.seq).limit(limit)).all()
        return [{"seq": r.seq, "job_id": r.job_id, "type": r.type, "at": iso(r.at), **r.payload} for r in rows]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one()

    def counts(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.job_type, JOBS.c.status, func.count()).group_by(JOBS.c.job_type, JOBS.c.status)
            ).all()
        by_status = {s.value: 0 for s in JobStatus}
        by_type: dict[str, dict[str, int]] = {}
        for job_type, status, n in rows:
            by_status[status] = by_status.get(status, 0) + n
            by_type.setdefault(job_type, {})[status] = n
        return by_status, by_type

    def durations(self, limit: int = 10_000) -> list[float]:
        """Run times of the most recent successful jobs, in seconds."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.started_at, JOBS.c.finished_at)
                .where(JOBS.c.status == JobStatus.SUCCEEDED.value, JOBS.c.started_at.is_not(None))
                .order_by(JOBS.c.finished_at.desc())
                .limit(limit)
            ).all()
        return [(f - s).total_seconds() for s, f in rows if f is not None]

    def finished_events_since(self, since: datetime) -> list[tuple[str, datetime]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(EVENTS.c.type, EVENTS.c.at).where(
                    EVENTS.c.type.in_(["succeeded", "failed"]), EVENTS.c.at >= since
                )
            ).all()
        return [(t, at) for t, at in rows]


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


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
