"""Schedule transitions: the only code that changes a schedule or makes a job for one of its planned times.

A mixin of ``Ledger``, as the trash is. Each change is one transaction that also appends one event to
``job_events`` under job id 0 (no job has it): the event's ``seq`` orders it among the job events, so clients get
schedule changes live and in replay exactly as they get job changes, made here or by another process. A job made
for a planned time commits together with the schedule's move past that time, and the unique key on
``jobs (schedule_id, planned_at)`` makes a second insert for the same planned time a no-op: a planned time never
runs twice, across restarts, kill -9 and several workers on one PostgreSQL ledger. A run of a type that prepares its
input (an upload's snapshot of its file) is prepared just before that transaction, as a submission at the planned
time would be.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, delete, func, insert, select, update

from engine.errors import JobdeckError, ValidationError
from engine.jobs.base import Prepared, remove_staged
from engine.schedule_rules import describe, load, planned_times
from engine.storage.prepared import status_in
from engine.storage.rows import iso, job_to_dict, utcnow
from engine.storage.status import WAITING, JobStatus, ScheduleType
from engine.storage.tables import EVENTS, JOBS, SCHEDULES

log = logging.getLogger(__name__)
Prepare = Callable[[dict[str, Any]], Prepared | None]  # a run of the schedule, submitted now (see Operations)
SCHEDULE_EVENT_JOB_ID = 0
NEXT_RUNS = 5
CATCH_UP_LIMIT = 100  # runs one catch-up "all" makes at most: the most recent ones
_MAX_DUE = 10_000  # planned times one pass looks at for a schedule (a minutely rule a week behind)
_BUSY = (*WAITING, JobStatus.RUNNING)


class ScheduleNotFound(ValidationError):
    def __init__(self, schedule_id: int) -> None:
        super().__init__("id", f"no schedule with id {schedule_id}")


@dataclass(frozen=True)
class Due:
    """What one pass of the scheduler did for one schedule."""

    schedule_id: int
    jobs: list[dict[str, Any]]
    skipped: int  # planned times passed over (catch-up skip/once, overlap skip, paused)


def schedule_to_dict(row: Any, now: datetime | None = None) -> dict[str, Any]:
    """The public schedule JSON: stored fields, the rule in plain language, and the next planned times.

    ``next_run_at`` and ``next_runs`` are the times it will run: none while paused with no end, and from the
    pause's end while paused until a time."""
    data = dict(row._mapping if hasattr(row, "_mapping") else row)
    rule = load(data["rule"])
    now = now or utcnow()
    cursor = data["next_run_at"]
    if data["paused"]:
        until = data["paused_until"]
        cursor = None if until is None else _next(data, max(until, now), inclusive=False)
    runs = [] if cursor is None else [cursor, *_times(data, cursor, NEXT_RUNS - 1)]
    return {
        "id": data["id"],
        "name": data["name"],
        "job_type": data["job_type"],
        "parameters": data["parameters"],
        "priority": data["priority"],
        "max_retries": data["max_retries"],
        "rule": data["rule"],
        "kind": "every" if rule.every_s is not None else "cron",
        "description": describe(rule),
        "tz": data["tz"],
        "start_at": iso(data["start_at"]),
        "end_at": iso(data["end_at"]),
        "catch_up": data["catch_up"],
        "overlap": data["overlap"],
        "paused": bool(data["paused"]),
        "pause_note": data["pause_note"],
        "paused_until": iso(data["paused_until"]),
        "next_run_at": iso(cursor),
        "next_runs": [iso(t) for t in runs],
        "created_at": iso(data["created_at"]),
        "updated_at": iso(data["updated_at"]),
    }


def _times(data: dict[str, Any], after: datetime, count: int, until: datetime | None = None) -> list[datetime]:
    end = data["end_at"] if until is None or (data["end_at"] and data["end_at"] < until) else until
    return planned_times(
        load(data["rule"]), data["tz"], after, count, anchor=data["created_at"], start=data["start_at"], end=end
    )


def _next(data: dict[str, Any], after: datetime, *, inclusive: bool) -> datetime | None:
    """The first planned time after ``after`` (or at it, when ``inclusive``)."""
    found = _times(data, after - timedelta(microseconds=1) if inclusive else after, 1)
    return found[0] if found else None


def first_cursor(data: dict[str, Any], now: datetime) -> datetime | None:
    """Where a new, edited or resumed schedule starts: its first planned time after now."""
    return _next(data, now, inclusive=False)


class LedgerSchedules:
    engine: Engine
    dialect: str
    _write: Callable[..., Any]
    _record: Callable[..., Any]

    # ---------------------------------------------------------------- reads
    def schedule_row(self, schedule_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(SCHEDULES).where(SCHEDULES.c.id == schedule_id)).first()
        if row is None:
            raise ScheduleNotFound(schedule_id)
        return dict(row._mapping)

    def schedule_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(SCHEDULES).order_by(SCHEDULES.c.id))]

    def schedule_runs(self, schedule_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The jobs a schedule made, the latest planned first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS).where(JOBS.c.schedule_id == schedule_id).order_by(JOBS.c.planned_at.desc()).limit(limit)
            ).all()
        return [job_to_dict(r) for r in rows]

    def schedule_recent_runs(self, per_schedule: int) -> dict[int, list[dict[str, Any]]]:
        """Every schedule's latest ``per_schedule`` runs (id, status, planned time; the latest first), in one read
        that walks the ``(schedule_id, planned_at)`` key: a list of schedules shows how their runs went."""
        if per_schedule <= 0:
            return {}
        rank = func.row_number().over(partition_by=JOBS.c.schedule_id, order_by=JOBS.c.planned_at.desc()).label("rank")
        ranked = (
            select(JOBS.c.schedule_id, JOBS.c.id, JOBS.c.status, JOBS.c.planned_at, rank)
            .where(JOBS.c.schedule_id.is_not(None))
            .subquery()
        )
        query = select(ranked).where(ranked.c.rank <= per_schedule).order_by(ranked.c.schedule_id, ranked.c.rank)
        found: dict[int, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                found.setdefault(row.schedule_id, []).append(
                    {"id": row.id, "status": row.status, "planned_at": iso(row.planned_at)}
                )
        return found

    def schedule_wakeup(self) -> datetime | None:
        """When the scheduler next has something to do: the earliest planned time of a running schedule, or the
        earliest end of a pause. One read of one small table."""
        c = SCHEDULES.c
        when = case((c.paused.is_(True), c.paused_until), else_=c.next_run_at)
        with self.engine.connect() as conn:
            return conn.execute(select(func.min(when))).scalar_one()

    # ---------------------------------------------------------------- changes
    def schedule_add(self, values: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        values = {**values, "created_at": now, "updated_at": now, "paused": False}
        values["next_run_at"] = first_cursor(values, now)

        def op(tx: Any) -> dict[str, Any]:
            (row,) = tx.run(insert(SCHEDULES).values(values).returning(*SCHEDULES.c))
            return self._schedule_event(tx, row, "schedule_added")

        return self._write(op)

    def schedule_change(self, schedule_id: int, change: Callable[[dict[str, Any]], dict[str, Any]], kind: str) -> Any:
        """Apply ``change`` (the stored row → the new values) to one schedule, with its event."""

        def op(tx: Any) -> dict[str, Any]:
            row = tx.first(select(SCHEDULES).where(SCHEDULES.c.id == schedule_id))
            if row is None:
                raise ScheduleNotFound(schedule_id)
            values = {**change(dict(row)), "updated_at": utcnow()}
            (new,) = tx.run(
                update(SCHEDULES).where(SCHEDULES.c.id == schedule_id).values(values).returning(*SCHEDULES.c)
            )
            return self._schedule_event(tx, new, kind)

        return self._write(op)

    def schedule_delete(self, schedule_id: int) -> dict[str, Any]:
        """Remove a schedule; the jobs it made stay, with their ``schedule_id``."""

        def op(tx: Any) -> dict[str, Any]:
            rows = tx.run(delete(SCHEDULES).where(SCHEDULES.c.id == schedule_id).returning(*SCHEDULES.c))
            if not rows:
                raise ScheduleNotFound(schedule_id)
            return self._schedule_event(tx, rows[0], "schedule_deleted")

        return self._write(op)

    def schedule_run_now(
        self, schedule_id: int, outbox: Callable[[Any, dict[str, Any]], None], *, prepare: Prepare | None = None
    ) -> dict[str, Any]:
        """One run now, outside the rule: its ``planned_at`` is now; the schedule's next planned time is kept."""
        row = self.schedule_row(schedule_id)
        when = utcnow()
        ready = _prepare_runs(row, [when], prepare)

        def op(tx: Any) -> dict[str, Any]:
            current = tx.first(select(SCHEDULES).where(SCHEDULES.c.id == schedule_id))
            if current is None:
                raise ScheduleNotFound(schedule_id)
            (job,) = self._make_jobs(tx, dict(current), [when], outbox, ready)
            return job

        with _release_unused(ready) as made:
            job = self._write(op)
            made.append(job)
        return job

    def schedule_resume_due(self, now: datetime) -> list[dict[str, Any]]:
        """Schedules whose pause ended: running again from their next planned time after now."""
        c = SCHEDULES.c
        with self.engine.connect() as conn:
            ids = conn.execute(select(c.id).where(c.paused.is_(True), c.paused_until <= now)).scalars().all()
        resumed = []
        for schedule_id in ids:
            try:
                resumed.append(
                    self.schedule_change(schedule_id, lambda row: resume_values(row, now), "schedule_resumed")
                )
            except ScheduleNotFound:
                continue  # deleted meanwhile
        return resumed

    def schedule_fire(
        self,
        now: datetime,
        outbox: Callable[[Any, dict[str, Any]], None],
        *,
        missed_before: datetime | None = None,
        limit: int = 200,
        prepare: Prepare | None = None,
    ) -> list[Due]:
        """Make the jobs of every planned time up to ``now``, schedule by schedule, each in its own transaction.

        Planned times before ``missed_before`` (the moment the scheduler started, or woke from a sleep of the
        machine) passed while nobody was watching: the schedule's catch-up policy says which of them run.
        ``prepare`` submits each run of a type that prepares its input (an upload reads its file then)."""
        c = SCHEDULES.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SCHEDULES).where(c.paused.is_(False), c.next_run_at <= now).order_by(c.next_run_at).limit(limit)
            ).all()
        return [self._fire_one(dict(row._mapping), now, outbox, missed_before, prepare) for row in rows]

    def _fire_one(
        self, row: dict[str, Any], now: datetime, outbox: Callable[[Any, dict[str, Any]], None],
        missed: datetime | None, prepare: Prepare | None,
    ) -> Due:  # fmt: skip
        cursor = row["next_run_at"]
        due = [cursor, *_times(row, cursor, _MAX_DUE, until=now)]
        following = _next(row, max(now, due[-1]), inclusive=False)
        late = [t for t in due if missed is not None and t < missed]
        chosen = pick_runs(row["catch_up"], late, [t for t in due if t not in late])
        # Preparing reads files: before the transaction, never while holding the ledger's write lock.
        ready = _prepare_runs(row, chosen, prepare)

        def op(tx: Any) -> Due:
            moved = tx.run(
                update(SCHEDULES)
                .where(SCHEDULES.c.id == row["id"], SCHEDULES.c.next_run_at == cursor, SCHEDULES.c.paused.is_(False))
                .values(next_run_at=following)
                .returning(SCHEDULES.c.id)
            )
            if not moved:  # edited, paused, deleted or fired by another worker since it was read
                return Due(row["id"], [], 0)
            runs = chosen
            if runs and row["overlap"] == "skip" and self._busy(tx, row["id"]):
                runs = []
            jobs = self._make_jobs(tx, row, runs, outbox, ready)
            return Due(row["id"], jobs, len(due) - len(jobs))

        with _release_unused(ready) as made:
            done = self._write(op)
            made.extend(done.jobs)
        return done

    def _busy(self, tx: Any, schedule_id: int) -> bool:
        return bool(tx.run(select(JOBS.c.id).where(JOBS.c.schedule_id == schedule_id, status_in(_BUSY)).limit(1)))

    def _make_jobs(
        self,
        tx: Any,
        row: dict[str, Any],
        planned: Sequence[datetime],
        outbox: Callable[[Any, dict[str, Any]], None],
        ready: dict[datetime, Prepared | str] | None = None,
    ) -> list[dict[str, Any]]:
        """One pending job per planned time; a planned time that already has its job is left alone. A run that
        could not be prepared (``ready`` holds its message: the file is gone…) is made failed, with that error."""
        jobs = []
        for when in planned:
            made = (ready or {}).get(when)
            failed = isinstance(made, str)
            values = {
                "job_type": row["job_type"],
                "parameters": made.parameters if isinstance(made, Prepared) else row["parameters"],
                "staged_path": str(made.staged_path) if isinstance(made, Prepared) and made.staged_path else None,
                "status": (JobStatus.FAILED if failed else JobStatus.PENDING).value,
                "error": made if failed else None,
                "finished_at": utcnow() if failed else None,
                "priority": row["priority"],
                "max_retries": row["max_retries"],
                "attempts": 0,
                "schedule_type": ScheduleType.IMMEDIATE.value,
                "created_at": utcnow(),
                "schedule_id": row["id"],
                "planned_at": when,
            }
            upsert: Any
            if self.dialect == "postgresql":  # imported here: a SQLite ledger never loads the PostgreSQL dialect
                from sqlalchemy.dialects.postgresql import insert as postgresql_insert

                upsert = postgresql_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                upsert = sqlite_insert
            stmt = (
                upsert(JOBS)
                .values(values)
                .on_conflict_do_nothing(index_elements=["schedule_id", "planned_at"])
                .returning(*JOBS.c)
            )
            for inserted in tx.run(stmt):
                job = job_to_dict(inserted)
                self._record(tx, job, "created")
                if failed:
                    self._record(tx, job, "failed")
                else:
                    outbox(tx.cursor, job)
                jobs.append(job)
        return jobs

    def _schedule_event(self, tx: Any, row: Any, kind: str) -> dict[str, Any]:
        from engine.storage.repository import _pg_event_lock

        schedule = schedule_to_dict(row)
        if self.dialect == "postgresql" and not tx.events:
            tx.run("pg-event-lock", {}, _pg_event_lock)
        at = utcnow()
        (stored,) = tx.run(
            insert(EVENTS)
            .values(job_id=SCHEDULE_EVENT_JOB_ID, type=kind, payload={"schedule": schedule}, at=at)
            .returning(EVENTS.c.seq)
        )
        tx.events.append({"seq": stored["seq"], "job_id": SCHEDULE_EVENT_JOB_ID, "type": kind, "at": iso(at),
                          "schedule": schedule})  # fmt: skip
        return schedule


def _prepare_runs(
    row: dict[str, Any], planned: Sequence[datetime], prepare: Prepare | None
) -> dict[datetime, Prepared | str]:
    """Each run submitted as at its planned time: what ``prepare`` made of the template, or why it could not."""
    if prepare is None:
        return {}
    ready: dict[datetime, Prepared | str] = {}
    for when in planned:
        try:
            made = prepare(row)
        except ValidationError as exc:
            ready[when] = f"could not start the run: {exc.field}: {exc.message}" if exc.field else exc.message
            continue
        except JobdeckError as exc:
            ready[when] = f"could not start the run: {exc}"
            continue
        except Exception as exc:  # a type's bug must not stop the schedule's other runs, or the scheduler
            log.exception("preparing a run of schedule %s failed", row["id"])
            ready[when] = f"could not start the run: {type(exc).__name__}: {exc}"
            continue
        if made is None:
            return {}  # the type prepares nothing: every run is the template
        ready[when] = made
    return ready


@contextlib.contextmanager
def _release_unused(ready: dict[datetime, Prepared | str]) -> Iterator[list[dict[str, Any]]]:
    """Staged copies no job took (the planned time already had its job, overlap skipped it, or the write failed)
    are removed: the jobs that were made are appended to the list this yields."""
    made: list[dict[str, Any]] = []
    try:
        yield made
    finally:
        taken = {datetime.fromisoformat(job["planned_at"]) for job in made if job.get("planned_at")}
        for when, prepared in ready.items():
            if isinstance(prepared, Prepared) and prepared.staged_path and when not in taken:
                remove_staged(prepared.staged_path)


def pick_runs(policy: str, missed: list[datetime], on_time: list[datetime]) -> list[datetime]:
    """Which planned times get a run: every one that came due while the scheduler watched, and of those missed
    while it did not, none (``skip``), the latest (``once``: one run for all of them) or the latest
    ``CATCH_UP_LIMIT`` (``all``)."""
    if policy == "skip":
        chosen: list[datetime] = []
    elif policy == "once":
        chosen = missed[-1:]
    else:
        chosen = missed[-CATCH_UP_LIMIT:]
    return chosen + on_time


def resume_values(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A resumed schedule runs from its next planned time: what passed while it was paused is not caught up."""
    return {"paused": False, "pause_note": None, "paused_until": None, "next_run_at": first_cursor(row, now)}
