"""The one API every front end uses: the GUI (through the control channel), the CLI and the worker itself.

Every operation validates first and writes nothing on error; it raises ``ValidationError`` naming the field and
the rule. Results are plain JSON-ready dicts, the same ones the CLI prints with ``--json``.
"""

from __future__ import annotations

import builtins
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from engine.config import DEFAULT_PRIORITY, Paths, Settings, load_settings
from engine.credentials.store import Credentials, CredentialStore, default_store
from engine.errors import JobdeckError, ValidationError
from engine.inputs import MAX_DELAY_S as MAX_DELAY_S
from engine.inputs import parse_id as parse_id
from engine.inputs import parse_int as parse_int
from engine.inputs import parse_max_retries as parse_max_retries
from engine.inputs import parse_priority as parse_priority
from engine.inputs import parse_seconds as parse_seconds
from engine.inputs import parse_statuses as parse_statuses
from engine.inputs import parse_time as parse_time
from engine.jobs import registry
from engine.jobs.base import CleanupEnv, JobType, Params, Prepared, remove_staged
from engine.meta import EngineInfo
from engine.schedule_ops import ScheduleOperations
from engine.stats import buckets, parse_window, window_start
from engine.storage.reads import SORT_KEYS, JobQuery
from engine.storage.repository import ACTIONS, Ledger, Outbox, no_outbox
from engine.storage.status import STOP_NOTE, STOPPABLE, WAITING, JobStatus
from engine.storage.trash import new_batch
from engine.upload_paths import check_key

if TYPE_CHECKING:
    from engine.queue.huey_queue import JobQueue

MAX_LIST_LIMIT = 10_000
MAX_IDS = 30_000  # ids one request may name (SQLite binds at most 32,766 values in a statement)
MAX_AGE_HOURS = 1_000_000  # over a century back; far more is no date at all (and overflows)


def validate_params(job_type: JobType, parameters: Any) -> Params:
    if not isinstance(parameters, dict):
        raise ValidationError("parameters", "must be an object of name → value")
    try:
        return job_type.Params.model_validate(parameters)
    except PydanticValidationError as exc:
        raise params_error(job_type, exc) from None


def params_error(job_type: JobType, exc: PydanticValidationError) -> ValidationError:
    return _params_error(job_type, exc.errors()[0])


def field_errors(job_type: JobType, exc: PydanticValidationError) -> dict[str, str]:
    """Every parameter at fault and what is wrong with it (the first fault per parameter), worded as ``create``
    words it, so a form can judge one field the moment it is left."""
    found: dict[str, str] = {}
    for err in exc.errors():
        error = _params_error(job_type, err)
        found.setdefault(error.field or "parameters", error.message)
    return found


def _params_error(job_type: JobType, err: Any) -> ValidationError:
    field = str(err["loc"][0]) if err["loc"] else "parameters"
    fields = job_type.Params.model_fields
    if err["type"] == "missing":
        return ValidationError(field, f"is required for {job_type.name}")
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(n for n, f in fields.items() if not _read_only(f))
        return ValidationError(field, f"is not a parameter of {job_type.name}; allowed: {allowed}")
    message = str(err["msg"]).removeprefix("Value error, ")
    return ValidationError(field, message)


def _read_only(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("readOnly"))


def percentile(values: Sequence[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(pct / 100 * len(ordered)) - 1)
    return ordered[rank]


class Operations:
    """Create, list, get, delete, retry, cancel, run now, stats, types and upload — once, for everyone."""

    def __init__(
        self,
        paths: Paths | None = None,
        *,
        ledger: Ledger | None = None,
        queue: JobQueue | None = None,
        store: CredentialStore | None = None,
    ) -> None:
        self.paths = paths or Paths()
        self.ledger = ledger or Ledger(self.paths.database_url())
        self._queue = queue
        self._queue_path = queue.path if queue is not None else self.paths.queue
        self.credentials = Credentials(store or default_store())
        self.after_enqueue: Callable[[], object] | None = None  # the CLI wakes a running worker here
        # A transactional outbox: when the queue lives in the ledger's SQLite file (the default: ``Paths.queue``),
        # the transaction that makes a job runnable also writes its message, so that no crash of this process
        # (a CLI killed between the two commits, while the worker runs on) can leave a job waiting for a message
        # that was never written; and a create commits once rather than twice. With PostgreSQL the message
        # follows the commit.
        self._in_ledger = _same_file(self._queue_path, self.ledger.sqlite_file)
        self.schedules = ScheduleOperations(self)
        self.info = EngineInfo(self)

    @property
    def queue(self) -> JobQueue:
        """Made on first use: a command that only reads never imports Huey."""
        if self._queue is None:
            from engine.queue import huey_queue

            self._queue = huey_queue.JobQueue(self._queue_path)
        return self._queue

    @property
    def _outbox(self) -> Outbox:
        """What writes a job's message inside the transaction that makes it runnable. Asked for before that
        transaction begins, so the queue is made here: Huey's set-up opens a connection of its own, which would
        wait for the write lock our own transaction holds."""
        if not self._in_ledger:
            return no_outbox
        self.queue  # noqa: B018  (made now, before the transaction)
        return self._write_message

    @property
    def settings(self) -> Settings:
        return load_settings(self.paths)

    def _write_message(self, cursor: Any, job: dict[str, Any]) -> None:
        self.queue.write(cursor, job["id"], job["priority"], _eta(job))

    def _enqueued(self, jobs: Sequence[dict[str, Any]]) -> None:
        """After the commit that made ``jobs`` runnable: their messages (unless the outbox wrote them), then wake
        the worker."""
        if not jobs:
            return
        if not self._in_ledger:
            for job in jobs:
                self.queue.enqueue(job["id"], job["priority"], _eta(job))
        else:
            self.queue.wake()
        if self.after_enqueue is not None:
            self.after_enqueue()

    def release(
        self, job: dict[str, Any], staged: str | None, reason: str, checkpoint: dict[str, Any] | None = None
    ) -> None:
        """Let the job's type release what the job held (staged copy, open multipart upload) once it ended."""
        job_type = registry.load().get(job["job_type"])
        if job_type is not None:
            env = CleanupEnv(self.settings, self.credentials)
            job_type.cleanup(job, Path(staged) if staged else None, env, reason, checkpoint=checkpoint)
        elif staged:
            remove_staged(Path(staged))

    # ------------------------------------------------------------------ create
    def _common(
        self, priority: Any, max_retries: Any, scheduled_time: Any, schedule: str | None, settings: Settings
    ) -> tuple[int, int, datetime | None]:
        prio = parse_priority(DEFAULT_PRIORITY if priority is None else priority)
        retries = parse_max_retries(settings.default_max_retries if max_retries is None else max_retries)
        if schedule not in (None, "immediate", "scheduled"):
            raise ValidationError("schedule_type", f"must be immediate or scheduled; got {schedule!r}")
        when = None
        if schedule == "scheduled" or scheduled_time not in (None, ""):
            when = parse_time("scheduled_time", scheduled_time, future=True)
        return prio, retries, when

    def create(
        self,
        job_type: str,
        parameters: dict[str, Any] | None = None,
        *,
        priority: Any = None,
        max_retries: Any = None,
        scheduled_time: Any = None,
        schedule_type: str | None = None,
        retry_base_s: float | None = None,
        retry_cap_s: float | None = None,
    ) -> dict[str, Any]:
        settings = self.settings
        kind = registry.get(job_type)
        prio, retries, when = self._common(priority, max_retries, scheduled_time, schedule_type, settings)
        for field, value in (("retry_base_s", retry_base_s), ("retry_cap_s", retry_cap_s)):
            if value is not None:
                parse_seconds(field, value)
        params = validate_params(kind, parameters or {})
        prepared = kind.prepare(params, settings, self.paths.spool)
        try:
            job = self.ledger.create(
                job_type=kind.name,
                parameters=prepared.parameters,
                priority=prio,
                max_retries=retries,
                scheduled_time=when,
                retry_base_s=retry_base_s if retry_base_s is not None else kind.retry_base_s,
                retry_cap_s=retry_cap_s if retry_cap_s is not None else kind.retry_cap_s,
                staged_path=str(prepared.staged_path) if prepared.staged_path else None,
                outbox=self._outbox,
            )
        except BaseException:
            if prepared.staged_path is not None:
                remove_staged(prepared.staged_path)
            raise
        self._enqueued([job])
        return job

    def prepare_run(self, schedule: dict[str, Any]) -> Prepared | None:
        """A schedule's run, submitted at its planned time: its type's ``prepare`` on the template (an upload
        reads its file now). None for a type that prepares nothing (the template is the job's parameters).
        Raises what a submission would (a ValidationError naming the field, a full disk…)."""
        kind = registry.get(schedule["job_type"])
        if type(kind).prepare is JobType.prepare:
            return None
        params = validate_params(kind, schedule["parameters"])
        return kind.prepare(params, self.settings, self.paths.spool)

    def upload(
        self,
        paths: Sequence[str],
        *,
        bucket: str | None = None,
        key_prefix: str | None = None,
        keys: Sequence[str | None] | None = None,
        conflict: str | None = None,
        in_place: bool = False,
        priority: Any = None,
        max_retries: Any = None,
        scheduled_time: Any = None,
        per_file: bool = False,
        dry_run: bool = False,
    ) -> Any:
        """One upload job per file.

        By default every file is checked before any job is written and one bad file refuses the batch (what
        ``jobdeck upload`` wants: a script fails whole). With ``per_file`` each file stands alone: the good ones are
        created and the answer says, file by file, why another was not. ``dry_run`` judges each file as
        ``per_file`` would, with the settings in effect now, and writes nothing: a front end shows the engine's
        verdict before anything is created instead of keeping its own copy of the rules. Both answer
        ``{"files": [{"path", "key", "job", "error": {"field", "message"} | None}], "created": n}``; options that
        apply to the whole batch (priority, time, prefix) still refuse it whole."""
        if not paths:
            raise ValidationError("path", "give at least one file to upload")
        if keys is not None and len(keys) != len(paths):
            raise ValidationError("keys", "must give one key per path")
        one_by_one = bool(per_file or dry_run)
        settings = self.settings
        kind = registry.get("upload_file")
        prio, retries, when = self._common(priority, max_retries, scheduled_time, None, settings)
        prefix = check_key("key_prefix", settings.s3_key_prefix if key_prefix is None else key_prefix, prefix=True)
        checked: list[tuple[str, str, Any]] = []  # path, key, the validated parameters or why they are not
        for i, path in enumerate(paths):
            key = keys[i] if keys is not None else None
            name = Path(str(path)).name
            params = {
                "path": str(path),
                "bucket": bucket,
                "key": key or f"{prefix}{name}",
                "conflict": conflict,
                "in_place": bool(in_place),
            }
            try:
                model: Any = validate_params(kind, {k: v for k, v in params.items() if v is not None})
            except ValidationError as exc:
                model = ValidationError(exc.field, f"{exc.message} ({path})")
                if not one_by_one:
                    raise model from None
            checked.append((str(path), str(params["key"]), model))
        if not one_by_one:
            return self._create_uploads(kind, [m for _, _, m in checked], prio, retries, when, settings)
        files: list[dict[str, Any]] = []
        good: list[Any] = []
        for path, key, model in checked:
            entry: dict[str, Any] = {"path": path, "key": key, "job": None, "error": None}
            files.append(entry)
            try:
                if isinstance(model, ValidationError):
                    raise model
                kind.check_template(model, settings, self.paths.spool)  # the file, bucket and key, as they are now
            except ValidationError as exc:
                entry["error"] = {"field": exc.field, "message": exc.message}
                continue
            good.append((entry, model))
        if not dry_run:
            self._create_uploads(kind, [m for _, m in good], prio, retries, when, settings, files=good)
        return {"files": files, "created": sum(1 for f in files if f["job"] is not None)}

    def _create_uploads(
        self,
        kind: JobType,
        models: list[Any],
        prio: int,
        retries: int,
        when: datetime | None,
        settings: Settings,
        files: list[tuple[dict[str, Any], Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Snapshot and record each upload. With ``files`` (per file), a file refused here (it changed since it
        was checked, or the disk is full) gets its entry's error and the others go on."""
        prepared: list[tuple[int, Prepared]] = []
        jobs: list[dict[str, Any]] = []
        try:
            for i, model in enumerate(models):  # every snapshot before any job is written
                try:
                    prepared.append((i, kind.prepare(model, settings, self.paths.spool)))
                except JobdeckError as exc:
                    if files is None:
                        raise
                    field = exc.field if isinstance(exc, ValidationError) else None
                    files[i][0]["error"] = {"field": field, "message": getattr(exc, "message", str(exc))}
            for i, p in prepared:
                job = self.ledger.create(
                    job_type=kind.name,
                    parameters=p.parameters,
                    priority=prio,
                    max_retries=retries,
                    scheduled_time=when,
                    staged_path=str(p.staged_path) if p.staged_path else None,
                    outbox=self._outbox,
                )
                jobs.append(job)
                if files is not None:
                    files[i][0]["job"] = job
        except BaseException:
            for _, p in prepared[len(jobs) :]:
                if p.staged_path is not None:
                    remove_staged(p.staged_path)
            raise
        finally:
            self._enqueued(jobs)  # written before any failure: they must still run
        return jobs

    # ------------------------------------------------------------------ reads
    def query(
        self,
        *,
        status: Any = None,
        job_type: str | None = None,
        search: str | None = None,
        created_after: Any = None,
        created_before: Any = None,
        ids: Any = None,
        max_id: Any = None,
        **unknown: Any,
    ) -> JobQuery:
        """The jobs a view, a selection or a bulk action means, checked as every front end's input is."""
        if unknown:
            allowed = "status, job_type, search, created_after, created_before, ids, max_id"
            raise ValidationError(next(iter(unknown)), f"is not a filter; allowed: {allowed}")
        if job_type:
            registry.get(job_type)
        if ids is not None and (not isinstance(ids, list | tuple) or len(ids) > MAX_IDS):
            raise ValidationError("ids", f"must be a list of at most {MAX_IDS:,} job ids (else act on a filter)")
        return JobQuery(
            statuses=tuple(parse_statuses(status)),
            job_type=job_type or None,
            search=search or None,
            created_after=parse_time("created_after", created_after, future=False) if created_after else None,
            created_before=parse_time("created_before", created_before, future=False) if created_before else None,
            ids=tuple(parse_id(i) for i in ids) if ids is not None else None,
            max_id=parse_int("max_id", max_id, 0, 2**63 - 1, "a job id") if max_id is not None else None,
        )

    def list(
        self,
        *,
        sort: str = "id",
        descending: bool = True,
        limit: Any = 100,
        offset: Any = 0,
        count: bool = True,
        summaries: bool = False,
        **filters: Any,
    ) -> dict[str, Any]:
        """A page of the jobs the filters match, in ``sort`` order; ``max_id`` is the newest job when it was read
        (a view passes it back with its later pages so that jobs created meanwhile do not shift them). With
        ``summaries``, each job carries its type's one-line ``summary`` (for a client that does not load the job
        types itself, as the CLI through a running worker)."""
        query = self.query(**filters)
        if sort not in SORT_KEYS:
            raise ValidationError("sort", f"unknown sort key {sort!r}; allowed: {', '.join(SORT_KEYS)}")
        lim = parse_int("limit", limit, 1, MAX_LIST_LIMIT, f"an integer from 1 to {MAX_LIST_LIMIT}")
        off = parse_int("offset", offset, 0, 2**62, "a non-negative integer")
        seq = self.ledger.last_seq()  # read before the query: replaying from it can only repeat, never miss
        newest = self.ledger.max_id() if query.max_id is None else query.max_id
        jobs, total = self.ledger.list(
            replace(query, max_id=newest), sort=sort, descending=bool(descending), limit=lim, offset=off,
            count=bool(count),
        )  # fmt: skip
        if summaries:
            types = registry.load()
            for job in jobs:
                kind = types.get(job["job_type"])
                job["summary"] = kind.summary(job["parameters"]) if kind else ""
        return {"jobs": jobs, "total": total, "limit": lim, "offset": off, "seq": seq, "max_id": newest}

    def status_counts(self, **filters: Any) -> dict[str, Any]:
        """The filter buttons' counts: jobs in each status among those the other filters match."""
        by_status = self.ledger.status_counts(self.query(**filters))
        return {"by_status": by_status, "total": sum(by_status.values())}

    def get(self, job_id: Any) -> dict[str, Any]:
        job = self.ledger.get(parse_id(job_id))
        if job["status"] == JobStatus.RETRYING.value:
            job["retry_schedule"] = self.retry_schedule(job)
        return job

    def retry_schedule(self, job: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        """The projected retry times: the next is fixed; later ones show the backoff window (min–max)."""
        settings = self.settings
        row = self.ledger.get_row(job["id"])
        base = row.retry_base_s or settings.retry_base_s
        cap = row.retry_cap_s or settings.retry_cap_s
        plan = [{"attempt": job["attempts"] + 1, "at": job["next_attempt_at"]}]
        start = datetime.fromisoformat(job["next_attempt_at"])
        for attempt in range(job["attempts"] + 2, job["max_retries"] + 2):
            ceiling = min(cap, base * 2 ** (attempt - 2))
            plan.append(
                {
                    "attempt": attempt,
                    "earliest": start.isoformat(),
                    "latest": (start + timedelta(seconds=ceiling)).isoformat(),
                }
            )
        return plan

    def stats(self) -> dict[str, Any]:
        by_status, by_type = self.ledger.counts()
        done = by_status[JobStatus.SUCCEEDED.value] + by_status[JobStatus.FAILED.value]
        durations = self.ledger.durations()
        now = datetime.now(UTC)
        finished = self.ledger.finished_events_since(now - timedelta(hours=1))
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_type": by_type,
            "success_rate": (by_status[JobStatus.SUCCEEDED.value] / done) if done else None,
            "mean_duration_s": statistics.fmean(durations) if durations else None,
            "p95_duration_s": percentile(durations, 95),
            "finished_last_hour": sum(1 for kind, _ in finished if kind == "succeeded"),
            "failed_last_hour": self.ledger.ended_failed_since(now - timedelta(hours=1)),
        }

    def timeline(self, hours: Any = None, window: Any = None) -> dict[str, Any]:
        """Jobs that succeeded and failed per bucket, for the stats chart: over a ``window`` (1h, 24h, 7d or 30d,
        about a hundred buckets), or per minute over the last ``hours`` (1-72; the default, 3)."""
        if window is not None and hours is not None:
            raise ValidationError("window", "give a window or hours, not both")
        if window is not None:
            span_s, bucket_s = parse_window(window)
            now = datetime.now(UTC)
            counted = self.ledger.finished_per_bucket(window_start(span_s, bucket_s, now), bucket_s)
            return {"window": str(window).strip(), **buckets(counted, span_s, bucket_s, now)}
        span = parse_int("hours", 3 if hours is None else hours, 1, 72, "an integer from 1 to 72")
        now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        start = now - timedelta(hours=span)
        minutes = span * 60
        succeeded = [0] * minutes
        failed = [0] * minutes
        for kind, at in self.ledger.finished_events_since(start):
            index = int((at - start).total_seconds() // 60)
            if 0 <= index < minutes:
                (succeeded if kind == "succeeded" else failed)[index] += 1
        return {"start": start.isoformat(), "minutes": minutes, "bucket_s": 60, "buckets": minutes,
                "succeeded": succeeded, "failed": failed}  # fmt: skip

    def types(self) -> builtins.list[dict[str, Any]]:
        """Each job type's name, label, parameter schema, and ``schedule_refusal``: why it cannot be scheduled
        (None when it can), so an editor says so when the type is chosen rather than after Create."""
        from engine.schedule_ops import refusal

        return [{**t.describe(), "schedule_refusal": refusal(t)} for _, t in sorted(registry.load().items())]

    # ------------------------------------------------------------------ actions
    def delete(self, job_id: Any) -> dict[str, Any]:
        job_id = parse_id(job_id)
        checkpoint = self.ledger.get_row(job_id).checkpoint
        job, staged = self.ledger.delete(job_id)
        self.release(job, staged, "deleted", checkpoint)
        return job

    def cancel(self, job_id: Any) -> dict[str, Any]:
        """A waiting job is canceled; a running one is asked to stop, and its worker cancels it and releases what
        it holds (see ``Ledger.cancel``)."""
        job_id = parse_id(job_id)
        row = self.ledger.get_row(job_id)
        staged = row.staged_path
        job = self.ledger.cancel(job_id)
        if job["status"] == JobStatus.CANCELED.value:
            self.release(job, staged, "canceled", row.checkpoint)
            if staged:
                self.ledger.clear_staged(job_id)
        return job

    def retry(self, job_id: Any) -> dict[str, Any]:
        job_id = parse_id(job_id)
        row = self.ledger.get_row(job_id)
        restaged = None
        if row.status in (JobStatus.FAILED.value, JobStatus.CANCELED.value) and not (
            row.staged_path and Path(row.staged_path).exists()
        ):
            kind = registry.load().get(row.job_type)
            if kind is not None:
                restaged = kind.restage(dict(row._mapping), self.settings, self.paths.spool)
        try:
            job = self.ledger.retry(job_id, str(restaged) if restaged else None, outbox=self._outbox)
        except BaseException:
            if restaged is not None:
                remove_staged(restaged)
            raise
        self._enqueued([job])
        return job

    def retry_all_failed(self) -> dict[str, Any]:
        jobs = self.ledger.retry_all_failed(outbox=self._outbox)
        self._enqueued(jobs)
        return {"count": len(jobs), "ids": [j["id"] for j in jobs]}

    def run_now(self, job_id: Any) -> dict[str, Any]:
        job = self.ledger.run_now(parse_id(job_id), outbox=self._outbox)
        self._enqueued([job])
        return job

    def rules(self) -> dict[str, builtins.list[str]]:
        """The states each operator action applies to: front ends ask rather than keep their own copy."""
        return {action: [s.value for s in statuses] for action, statuses in ACTIONS.items()}

    def bulk(self, action: str, *, dry_run: bool = False, **target: Any) -> dict[str, Any]:
        """One operator action on many jobs (the ``ids`` given, or all the filter matches up to ``max_id``),
        evaluated in the ledger a batch per transaction. ``matched`` is how many the target holds, ``applicable``
        how many are in a state the action applies to; a dry run only counts."""
        if action not in ACTIONS:
            raise ValidationError("action", f"unknown action {action!r}; allowed: {', '.join(ACTIONS)}")
        query = self.query(**target)
        allowed = [s.value for s in ACTIONS[action]]
        statuses = tuple(s for s in query.statuses or allowed if s in allowed)
        matched = self.ledger.matching(query)
        applicable = self.ledger.matching(replace(query, statuses=statuses)) if statuses else 0
        report: dict[str, Any] = {
            "action": action,
            "matched": matched,
            "applicable": applicable,
            "done": 0,
            "dry_run": bool(dry_run),
        }
        if dry_run or not applicable:
            return report
        # A type that stages its input again on retry (see ``JobType.restage``) is retried one job at a time.
        restaged = []
        if action == "retry":
            restaged = [name for name, kind in registry.load().items() if type(kind).restage is not JobType.restage]
        if action == "delete":
            report["batch"] = new_batch()  # what "Undo" restores
            self.expire_trash()
        rows = self.ledger.act_on(query, action, outbox=self._outbox, skip_types=restaged, batch=report.get("batch"))
        jobs = [job for job, _ in rows]
        for job, row in rows:
            if (
                action in ("cancel", "delete")
                and job["status"] not in STOPPABLE  # asked to stop: its worker releases what it holds
                and (row["staged_path"] or row["checkpoint"])
            ):
                reason = "canceled" if action == "cancel" else "deleted"
                self.release(job, row["staged_path"], reason, row["checkpoint"])
                if action == "cancel" and row["staged_path"]:
                    self.ledger.clear_staged(job["id"])
        if action in ("retry", "run_now"):
            self._enqueued(jobs)
        done = len(jobs)
        stopping = sum(1 for job in jobs if job["status"] in STOPPABLE)
        notes = [f"{stopping:,} running: {STOP_NOTE}"] if stopping else []
        if action == "cancel" and applicable > len(jobs):  # counted, then found asked before (or ended meanwhile)
            notes.append(f"{applicable - len(jobs):,} unchanged: already asked to stop, or ended meanwhile")
        if stopping:
            report["stopping"] = stopping
        if notes:
            report["note"] = "; ".join(notes)
        for name in restaged if query.job_type in (None, *restaged) else ():
            page, _ = self.ledger.list(replace(query, statuses=statuses, job_type=name), limit=MAX_LIST_LIMIT,
                                       count=False)  # fmt: skip
            for job in page:
                try:
                    self.retry(job["id"])
                    done += 1
                except JobdeckError as exc:
                    report.setdefault("errors", []).append(f"job {job['id']}: {exc}")
        return {**report, "done": done}

    # ------------------------------------------------------------------ the trash
    def trash(self, limit: Any = 100, offset: Any = 0) -> dict[str, Any]:
        """Deleted jobs that can still be restored, most recently deleted first."""
        lim = parse_int("limit", limit, 1, MAX_LIST_LIMIT, f"an integer from 1 to {MAX_LIST_LIMIT}")
        off = parse_int("offset", offset, 0, 2**62, "a non-negative integer")
        self.expire_trash()
        jobs, total = self.ledger.trash_list(limit=lim, offset=off)
        return {"jobs": jobs, "total": total, "limit": lim, "offset": off}

    def restore(self, ids: Any = None, batch: str | None = None) -> dict[str, Any]:
        """Put trashed jobs back (these job ids, or one delete's ``batch``); those waiting to run are queued."""
        if ids is None and not batch:
            raise ValidationError("ids", "name the jobs to restore: their ids, or a delete's batch")
        job_ids = self._trashed(ids) if ids is not None else None
        jobs = self.ledger.restore(ids=job_ids, batch=batch or None, outbox=self._outbox_if_waiting)
        self._enqueued([job for job in jobs if job["status"] in _WAITING])
        return {"restored": len(jobs), "ids": [job["id"] for job in jobs]}

    def purge_trash(self, ids: Any = None, everything: bool = False) -> dict[str, Any]:
        """Remove trashed jobs for good: these ids, or (``everything``) the whole trash."""
        if ids is None and not everything:
            raise ValidationError("ids", "name the jobs to purge, or purge everything")
        job_ids = self._trashed(ids) if ids is not None and not everything else None
        return {"purged": self.ledger.purge(ids=job_ids, everything=bool(everything))}

    def _trashed(self, ids: Any) -> tuple[int, ...]:
        """The job ids given, each of them in the trash: one that is not is an error, and nothing is done."""
        job_ids = self.query(ids=ids).ids or ()
        missing = sorted(set(job_ids) - self.ledger.trashed_ids(job_ids))
        if missing:
            listed = ", ".join(str(i) for i in missing[:10]) + (", …" if len(missing) > 10 else "")
            raise ValidationError("ids", f"not in the trash: {listed} (the trash lists the deleted jobs it keeps)")
        return job_ids

    def expire_trash(self) -> int:
        """Purge what has been in the trash longer than the ``trash_days`` setting."""
        return self.ledger.purge(older_than=datetime.now(UTC) - timedelta(days=self.settings.trash_days))

    def _outbox_if_waiting(self, cursor: Any, job: dict[str, Any]) -> None:
        if job["status"] in _WAITING:
            self._outbox(cursor, job)

    def cleanup_uploads(self, bucket: str | None = None, older_than_hours: Any = 24) -> dict[str, Any]:
        """Abort stale multipart uploads in the bucket, sparing those that unfinished upload jobs will resume."""
        from engine.upload_aborts import cleanup_stale

        try:
            hours = -1.0 if isinstance(older_than_hours, bool) else float(older_than_hours)
        except (TypeError, ValueError):
            hours = -1.0
        if not 0 <= hours <= MAX_AGE_HOURS:
            raise ValidationError(
                "older_than_hours", f"must be a number of hours from 0 to {MAX_AGE_HOURS}; got {older_than_hours!r}"
            )
        live = self.list(status=["pending", "scheduled", "running", "retrying"], job_type="upload_file", limit=10_000)
        keep = {
            cp["upload_id"]
            for job in live["jobs"]
            if (cp := self.ledger.get_row(job["id"]).checkpoint) and cp.get("upload_id")
        }
        return cleanup_stale(self.settings, self.credentials, bucket=bucket, older_than_hours=hours, keep=keep)

    def count_failed(self) -> int:
        return self.ledger.count(JobStatus.FAILED)


_WAITING = frozenset(s.value for s in WAITING)


def _eta(job: dict[str, Any]) -> datetime | None:
    """When a job's message is due: its scheduled time while it is ``scheduled``, else now."""
    if job["status"] == JobStatus.SCHEDULED.value:
        return datetime.fromisoformat(job["scheduled_time"])
    return None


def _same_file(path: Path, database: Path | None) -> bool:
    """Whether the queue's file is the ledger's SQLite database (see ``JobQueue.lives_in``)."""
    return database is not None and path.resolve() == database.resolve()
