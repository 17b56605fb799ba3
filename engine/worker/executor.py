"""Running one claimed job: call its type's run(), decide what the outcome means, release what it held.

This is the single decision point of the retry policy (``compute_backoff`` is the pure part). Unexpected
exceptions are retried like ``JobError``; only ``PermanentJobError`` fails at once. A failure is recorded here
at once (its cleanup may be slow, e.g. aborting a multipart upload); a success is handed back as a ``Success``
for the dispatcher to record together with other jobs' bookkeeping (see ``engine.worker.dispatch``), unless the
job reported it through ``ctx.delivered`` or ran it through ``ctx.deliver``: an effect that a second run would
repeat (an email the server has accepted) is recorded the moment it happened, on this thread, so that a worker
killed afterwards does not repeat it. ``ctx.deliver`` runs the effect in the courier (``engine.worker.courier``),
which notes it and outlives this process; emails are still at least once, when the courier itself is killed.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.config import Paths, Settings
from engine.credentials.store import Credentials
from engine.errors import JobError, PermanentJobError
from engine.jobs import registry
from engine.jobs.base import CleanupEnv, Effect, JobContext, JobType
from engine.queue.backoff import retry_delay
from engine.queue.huey_queue import JobQueue
from engine.storage.repository import Claim, Ledger, job_to_dict
from engine.storage.status import JobStatus
from engine.worker.courier import Courier
from engine.worker.delivery_notes import DeliveryNotes

log = logging.getLogger(__name__)

ProgressSink = Callable[[int, dict[str, Any]], None]

WORKER_LOST = "worker lost: the worker stopped while running this job"


def _gave_up(attempts: int, max_retries: int) -> str:
    return f" (gave up after {attempts} attempts)" if max_retries else ""


@dataclass(frozen=True)
class Success:
    """A run that returned: what the ledger records, and what its type releases once that is committed."""

    job: dict[str, Any]
    result: dict[str, Any] | None
    kind: JobType
    staged: Path | None
    checkpoint: dict[str, Any] | None
    settings: Settings


class _Delivery:
    """``ctx.delivered`` for one run: commits the job's success at once (see the module)."""

    def __init__(self, executor: Executor, job: dict[str, Any]) -> None:
        self.executor = executor
        self.claimed = job
        self.done = False
        self.job: dict[str, Any] | None = None  # as committed; None if this worker had lost the job meanwhile
        self.pending: tuple[dict[str, Any] | None] | None = None  # the result, if the commit failed

    def __call__(self, result: dict[str, Any] | None, noted: bool = False) -> None:
        """``noted``: the courier has written the note (``notes.expect()`` was called before it was asked)."""
        if self.done:
            return
        self.done = True
        notes = self.executor.notes
        if notes is not None and not noted:
            notes.note(self.claimed["id"], self.claimed["attempts"], result)
        try:
            self.job = self.executor.ledger.succeed(self.claimed, self.executor.worker_id, result)
        except Exception:
            log.exception("job %s: could not record its delivery at once; the next pass records it", self.claimed["id"])
            self.pending = (result,)
        finally:
            if notes is not None:
                notes.settled()

    def in_courier(self, effect: Effect, args: tuple[Any, ...]) -> dict[str, Any] | None:
        """``ctx.deliver`` with a courier: the effect runs there, which notes it; the success is committed here."""
        courier, notes = self.executor.courier, self.executor.notes
        assert courier is not None and notes is not None
        notes.expect()  # the courier may write a note any moment now: no compaction until this settles
        try:
            result = courier.call(self.claimed["id"], self.claimed["attempts"], effect, args)
        except BaseException:
            notes.settled()
            raise
        self(result, noted=True)
        return result


class Executor:
    def __init__(
        self,
        ledger: Ledger,
        queue: JobQueue,
        paths: Paths,
        credentials: Credentials,
        worker_id: str,
        progress: ProgressSink | None = None,
        rng: random.Random | None = None,
        notes: DeliveryNotes | None = None,
        courier: Courier | None = None,
    ) -> None:
        self.ledger = ledger
        self.queue = queue
        self.paths = paths
        self.credentials = credentials
        self.worker_id = worker_id
        self.progress = progress
        self.rng = rng or random.Random()
        self.notes = notes
        self.courier = courier
        self._contexts: dict[int, JobContext] = {}
        self._lock = threading.Lock()

    def request_stop(self) -> None:
        """Ask running jobs to stop at their next safe point (cooperative: uploads check between parts)."""
        with self._lock:
            for ctx in self._contexts.values():
                ctx.stop_requested.set()

    def request_cancel(self, job_ids: Iterable[int]) -> None:
        """An operator asked these jobs to stop (``Ledger.cancel``): those running here stop at their next safe
        point, and the run that stops for it ends canceled (``_failed``); a run that completes first succeeds."""
        with self._lock:
            for job_id in job_ids:
                if (ctx := self._contexts.get(job_id)) is not None:
                    ctx.cancel_requested.set()
                    ctx.stop_requested.set()

    def check_cancel_requests(self) -> None:
        """Requests written by other processes (a command that opened the ledger itself, another machine's worker
        on a shared PostgreSQL ledger): asked on each heartbeat while jobs run here."""
        with self._lock:
            if not self._contexts:
                return
        self.request_cancel(self.ledger.cancel_requests(self.worker_id))

    def on_events(self, events: list[dict[str, Any]]) -> None:
        """A ledger listener: a cancel request made in this process reaches its job at once (the heartbeat finds
        the ones other processes make, see ``Ledger.cancel_requests``)."""
        asked = [event["job_id"] for event in events if event["type"] == "cancel_requested"]
        if asked:
            self.request_cancel(asked)

    def run(self, claim: Claim, settings: Settings) -> Success | None:
        """Run a job this worker has claimed; ``None`` when it did not succeed (that outcome is recorded)."""
        job = claim.job
        assert job is not None
        job_id = job["id"]
        kind = registry.load().get(job["job_type"])
        staged = Path(claim.staged_path) if claim.staged_path else None
        if kind is None:
            self._fail(job, f"unknown job type {job['job_type']!r}: is its module in JOBDECK_JOB_MODULES?", None)
            return None
        ctx = JobContext(
            job_id=job_id,
            attempt=job["attempts"],
            created_at=str(job.get("created_at") or ""),
            settings=settings,
            credentials=self.credentials,
            temp_root=self.paths.temp,
            staged_path=staged,
            checkpoint=claim.checkpoint,
            _report=self.progress,
            _save_checkpoint=self.ledger.save_checkpoint,
        )
        delivery = _Delivery(self, job)
        ctx._delivered = delivery
        if self.courier is not None and self.notes is not None:
            ctx._courier = delivery.in_courier
        with self._lock:
            self._contexts[job_id] = ctx
        if job.get("cancel_requested_at"):  # asked between its claim and here; a retry would have cleared it
            self.request_cancel([job_id])
        try:
            params = kind.Params.model_validate(job["parameters"])
            result = kind.run(ctx, params)
        except Exception as exc:
            if not delivery.done:
                self._failed(kind, job, staged, settings, ctx, exc)
                return None
            log.warning("job %s: error after its delivery was recorded (ignored): %s", job_id, exc)
        finally:
            with self._lock:
                self._contexts.pop(job_id, None)
            ctx.remove_temp_dir()
        if delivery.pending is not None:  # its immediate commit failed: record it with the others
            return Success(job, delivery.pending[0], kind, staged, ctx.checkpoint, settings)
        if delivery.done:
            self._cleanup(kind, delivery.job, staged, "succeeded", settings, ctx.checkpoint)
            return None
        return Success(job, result, kind, staged, ctx.checkpoint, settings)

    def _failed(
        self,
        kind: JobType,
        job: dict[str, Any],
        staged: Path | None,
        settings: Settings,
        ctx: JobContext,
        exc: Exception,
    ) -> None:
        """Record a run that raised: a permanent error fails the job, any other one goes to the retry decision.

        A run that gave up because the worker asked it to stop (a shutdown past its grace period) goes back to the
        queue uncounted, as the shutdown does with the jobs still running: the error is the stop's, not the job's.
        A run an operator asked to stop is canceled, whatever it raised.
        """
        if ctx.cancel_requested.is_set():  # it stopped for the operator's request (or failed meanwhile: moot)
            done = self.ledger.cancel_running(job["id"], self.worker_id) or self._released_canceled(job["id"])
            self._cancel(kind, done, staged, settings, ctx.checkpoint)
            return None
        if ctx.stop_requested.is_set() and not isinstance(exc, PermanentJobError):
            # back to the queue; canceled instead if an operator asked meanwhile (see ``Ledger.release``)
            released = self.ledger.release(job["id"], self.worker_id) or self._released_canceled(job["id"])
            if released is not None and released["status"] == JobStatus.CANCELED.value:
                self._cancel(kind, released, staged, settings, ctx.checkpoint)
            return None
        if isinstance(exc, PermanentJobError):
            done = self._fail(job, self.credentials.redact(str(exc)), None)
            self._cleanup(kind, done, staged, "failed", settings, ctx.checkpoint)
            return None
        message = self.credentials.redact(str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}")
        tb = None if isinstance(exc, JobError) else self.credentials.redact(traceback.format_exc())
        done = self._retry_or_fail(job, message, tb, settings)
        if done is not None and done["status"] == JobStatus.FAILED.value:
            self._cleanup(kind, done, staged, "failed", settings, ctx.checkpoint)
        return None

    def _cancel(
        self,
        kind: JobType | None,
        job: dict[str, Any] | None,
        staged: Path | None,
        settings: Settings,
        checkpoint: dict[str, Any] | None,
    ) -> None:
        """After a running job was canceled (``job``; ``None`` if this worker had lost it): release what it held,
        as an operator's cancel of a waiting job does."""
        if kind is not None:
            self._cleanup(kind, job, staged, "canceled", settings, checkpoint)
        if job is not None and staged is not None:
            self.ledger.clear_staged(job["id"])

    def _released_canceled(self, job_id: int) -> dict[str, Any] | None:
        """The job, if the shutdown released it while its run was stopping and released it as canceled (an operator
        had asked): the run, which holds its checkpoint, releases what it held. (A job some other worker took over
        meanwhile and canceled looks the same; its holdings are then released twice, which is harmless.)"""
        try:
            row = self.ledger.get_row(job_id)
        except Exception:
            return None
        return job_to_dict(row) if row.status == JobStatus.CANCELED.value and row.worker_id is None else None

    def succeeded(self, success: Success, job: dict[str, Any] | None) -> None:
        """After the success was committed (``job`` is ``None`` if this worker had lost the job meanwhile)."""
        self._cleanup(success.kind, job, success.staged, "succeeded", success.settings, success.checkpoint)

    def _retry_or_fail(
        self, job: dict[str, Any], message: str, tb: str | None, settings: Settings
    ) -> dict[str, Any] | None:
        row = self.ledger.get_row(job["id"])
        delay = self._retry_delay(job["attempts"], job["max_retries"], row.retry_base_s, row.retry_cap_s, settings)
        if delay is None:
            return self._fail(job, message + _gave_up(job["attempts"], job["max_retries"]), tb)
        next_at = datetime.now(UTC) + timedelta(seconds=delay)
        done = self.ledger.retry_later(job["id"], self.worker_id, message, tb, next_at)
        if done is not None:
            self.queue.enqueue(job["id"], job["priority"], next_at)
        return done

    def _retry_delay(
        self, attempts: int, max_retries: int, base_s: float | None, cap_s: float | None, settings: Settings
    ) -> float | None:
        """``retry_delay`` with the job's own policy, else the settings'."""
        return retry_delay(
            attempts, max_retries, base_s or settings.retry_base_s, cap_s or settings.retry_cap_s, self.rng
        )

    def recover(self, rows: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
        """Jobs whose worker was lost (rows from ``Ledger.lost_leases``): the lost attempt counts and goes through
        the same retry decision as one that raised, reason ``worker lost``, unless the job's type knows that the
        attempt had finished the work (``JobType.completed_result``): then the job has succeeded. What a job that
        ended held is released, as on the normal paths. Returns the jobs as recorded."""
        recovered = []
        noted = self.notes.read() if self.notes is not None and rows else {}
        for row in rows:
            kind = registry.load().get(row["job_type"])
            staged = Path(row["staged_path"]) if row["staged_path"] else None
            attempt = (row["id"], row["attempts"])
            result = noted[attempt] if attempt in noted else self._completed_result(kind, row, staged, settings)
            if attempt in noted or result is not None:
                job = self.ledger.lease_lost(row, JobStatus.SUCCEEDED, result=result)
                reason = "succeeded"
            elif row["cancel_requested_at"] is not None:  # the operator's request outlives the worker
                job = self.ledger.lease_lost(row, JobStatus.CANCELED)
                reason = "canceled"
            else:
                delay = self._retry_delay(
                    row["attempts"], row["max_retries"], row["retry_base_s"], row["retry_cap_s"], settings
                )
                if delay is None:
                    error = WORKER_LOST + _gave_up(row["attempts"], row["max_retries"])
                    job = self.ledger.lease_lost(row, JobStatus.FAILED, error=error)
                    reason = "failed"
                else:
                    next_at = datetime.now(UTC) + timedelta(seconds=delay)
                    job = self.ledger.lease_lost(row, JobStatus.RETRYING, error=WORKER_LOST, next_attempt_at=next_at)
                    if job is not None:
                        self.queue.enqueue(row["id"], row["priority"], next_at)
                    reason = ""
            if job is None:  # its lease was renewed meanwhile: not lost after all
                continue
            recovered.append(job)
            if reason == "canceled":
                self._cancel(kind, job, staged, settings, row["checkpoint"])
            elif reason and kind is not None:
                self._cleanup(kind, job, staged, reason, settings, row["checkpoint"])
        return recovered

    def _completed_result(
        self, kind: JobType | None, row: dict[str, Any], staged: Path | None, settings: Settings
    ) -> dict[str, Any] | None:
        if kind is None:
            return None
        try:
            job = job_to_dict(row)
            env = CleanupEnv(settings, self.credentials)
            return kind.completed_result(job, staged, env, checkpoint=row["checkpoint"])
        except Exception:
            log.exception("job %s: could not tell whether its lost attempt completed; counting it as lost", row["id"])
            return None

    def _fail(self, job: dict[str, Any], message: str, tb: str | None) -> dict[str, Any] | None:
        return self.ledger.fail(job["id"], self.worker_id, message, tb)

    def _cleanup(
        self,
        kind: JobType,
        job: dict[str, Any] | None,
        staged: Path | None,
        reason: str,
        settings: Settings,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        if job is None:  # we lost the lease meanwhile; whoever holds the job now owns its files
            return
        try:
            kind.cleanup(job, staged, CleanupEnv(settings, self.credentials), reason, checkpoint=checkpoint)
        except Exception:
            log.exception("cleanup of job %s failed", job["id"])
