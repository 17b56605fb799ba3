"""Feeds the jobs model: a snapshot through `list`, older pages on demand, then events applied in coalesced batches."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.models.counts import LiveCounts
from desktop.models.jobs import PAGE, Filter, JobTableModel
from desktop.services.connection import WorkerConnection
from engine.errors import JobdeckError

log = logging.getLogger(__name__)

REFRESH_QUIET_MS = 1000  # a view at the top whose rows went stale is read again once changes pause this long
FLUSH_MS = 50  # at most ~20 model updates (and so redraws) a second, however fast events arrive
FLUSH_BUDGET_S = 0.005  # model work per flush; the rest waits for the next one, so the GUI thread never stalls
FLUSH_SLICE = 250  # events applied between two looks at the clock
COUNTS_QUIET_MS = 1000  # reconcile counts with the server once events pause this long…
COUNTS_MAX_MS = 5000  # …or at the latest this long after the first unreconciled batch
COUNTS_EMIT_MS = 250


class LiveJobs(QObject):
    """The only writer of the jobs model. Events that arrive while a snapshot is loading wait in the buffer and are
    applied after it if their seq is newer than the snapshot's, so nothing is missed and nothing is reloaded."""

    loading_changed = Signal(bool)
    counts_changed = Signal(object)  # the `stats` result
    events_applied = Signal(object)  # the job events that arrived since the last flush (the model may lag a flush)
    failed = Signal(str)

    def __init__(self, connection: WorkerConnection, model: JobTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.model = model
        self.loading = False
        self.loaded_once = False
        self.counts = LiveCounts()
        # Waiting job events, one per job (the latest; dicts keep first-arrival order), and the raw events for
        # the counts and notifications, which must see every transition.
        self._pending: dict[int, dict[str, Any]] = {}
        self._transitions: list[dict[str, Any]] = []
        self._progress: dict[int, dict[str, Any]] = {}
        self._generation = 0
        self._counting = False
        self._counts_due: float | None = None  # monotonic deadline of the pending reconcile (COUNTS_MAX_MS)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.timeout.connect(self._on_counts_timer_timeout)
        self._counts_emit_timer = QTimer(self)  # relabelling the filter buttons relayouts them: a few times a second
        self._counts_emit_timer.setSingleShot(True)
        self._counts_emit_timer.setInterval(COUNTS_EMIT_MS)
        self._counts_emit_timer.timeout.connect(self._on_counts_emit_timer_timeout)
        connection.job_events.connect(self._on_job_events)
        connection.progress.connect(self._on_progress)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_QUIET_MS)
        self._refresh_timer.timeout.connect(self._on_refresh_timer_timeout)
        model.fetch_requested.connect(self._on_fetch_requested)
        model.stale_changed.connect(self.refresh_if_following)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ snapshot
    async def start(self) -> None:
        """Wait for a worker to answer, then take the first snapshot and subscribe from its seq."""
        while not await self.connection.wait_until_available(30.0):
            log.info("still waiting for a worker")
        await self.load()

    async def load(self, filt: Filter | None = None) -> bool:
        filt = filt or self.model.filter
        self._generation += 1
        generation = self._generation
        self._set_loading(True)
        try:  # the first page alone: counting every match (a search over a million jobs) follows it
            result = await self.connection.request("list", limit=PAGE, count=False, **filt.list_args())
        except (JobdeckError, OSError, TimeoutError) as exc:
            if generation == self._generation:
                self._set_loading(False)
                self.failed.emit(f"Could not load jobs: {exc}")
            return False
        if generation != self._generation:
            return False  # a newer filter superseded this one
        seq, max_id, jobs = int(result.get("seq") or 0), int(result["max_id"]), result["jobs"]
        others = Filter(job_type=filt.job_type, search=filt.search)
        if others != self.counts.others:
            self.counts.follow(others)  # before the reset: the new view is never shown with the old filter's counts
        # a short first page is every match already; a full one is counted next, while it is on screen
        self.model.reset(jobs, seq=seq, total=len(jobs), max_id=max_id, filt=filt, counted=len(jobs) < PAGE)
        self.counts.remember(jobs)
        self.loaded_once = True
        self._set_loading(False)
        self.connection.start_stream(seq)
        self._keep(asyncio.ensure_future(self._count(filt, max_id, generation)))
        self._flush()
        return True

    async def _count(self, filt: Filter, max_id: int, generation: int) -> None:
        """The view's size, and the status buttons' counts, under the snapshot's newest id."""
        others = self.counts.others
        try:
            stats = await self.connection.request("status_counts", max_id=max_id, **others.query_args())
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.failed.emit(f"Could not count jobs: {exc}")
            return
        if generation != self._generation:
            return
        by_status = stats["by_status"]
        self.model.set_total(sum(by_status.get(s, 0) for s in filt.statuses) if filt.statuses else stats["total"])
        if self.counts.others == others:
            self.counts.reset(stats)
            self.counts_changed.emit(self.counts.stats)

    def _set_loading(self, loading: bool) -> None:
        if loading != self.loading:
            self.loading = loading
            self.loading_changed.emit(loading)

    def _on_fetch_requested(self, page_no: int) -> None:
        self._keep(asyncio.ensure_future(self._fetch(page_no, self._generation)))

    async def _fetch(self, page_no: int, generation: int) -> None:
        args = self.model.page_query(page_no)
        reverse = args.pop("reverse", False)
        try:
            result = await self.connection.request("list", **args)
        except (JobdeckError, OSError, TimeoutError) as exc:
            if generation == self._generation:
                self.model.fetch_failed(page_no)
                self.failed.emit(f"Could not load jobs: {exc}")
            return
        if generation == self._generation:
            jobs = result["jobs"][::-1] if reverse else result["jobs"]
            self.model.set_page(page_no, jobs)
            self.counts.remember(jobs)

    def refresh_if_following(self) -> None:
        """Read a stale view again once changes pause, if it shows its top (a view scrolled away keeps its rows,
        dimmed where they no longer match, until the operator returns or asks)."""
        if self.model.stale and self.model.following:
            self._refresh_timer.start()

    def _on_refresh_timer_timeout(self) -> None:
        if self.model.stale and self.model.following and not self.loading:
            self._keep(asyncio.ensure_future(self.load()))

    # ------------------------------------------------------------------ events
    @property
    def stats(self) -> dict[str, Any] | None:
        return self.counts.stats

    def _on_job_events(self, events: list[dict[str, Any]]) -> None:
        pending = self._pending
        for event in events:
            job = event.get("job") or {}
            if "id" in job:
                job_id = int(job["id"])
                pending.pop(job_id, None)  # re-insert: the job's place follows its latest event
                pending[job_id] = event
        self._transitions.extend(events)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_progress(self, event: dict[str, Any]) -> None:
        self._progress[int(event["job_id"])] = event.get("progress") or {}
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_flush_timer_timeout(self) -> None:
        self._flush()

    def _flush(self) -> None:
        """Apply what waits, within FLUSH_BUDGET_S; whatever is left goes in the next flush, FLUSH_MS later."""
        if self.loading or not self.loaded_once:
            return  # kept until the snapshot lands
        fresh: list[dict[str, Any]] = []
        if self._transitions:
            transitions, self._transitions = self._transitions, []
            fresh = [e for e in transitions if int(e.get("seq") or 0) > self.model.base_seq]
            if fresh:
                if not self.counts.apply(fresh):
                    self._schedule_counts()
                elif self.counts.stats is not None and not self._counts_emit_timer.isActive():
                    self._counts_emit_timer.start()
                self._schedule_counts(quiet_only=True)
        started = time.perf_counter()
        pending = self._pending
        applied = bool(pending)
        while pending:  # at least one slice per flush, so a slow machine still makes progress
            ids = list(itertools.islice(pending, FLUSH_SLICE))
            self.model.apply_events([pending.pop(job_id) for job_id in ids])
            if time.perf_counter() - started >= FLUSH_BUDGET_S:
                break
        if self._progress:
            progress, self._progress = self._progress, {}
            self.model.apply_progress(progress)
        if fresh or applied:
            self.events_applied.emit(fresh)  # also empty, when a held-back part of a burst reached the model
        if pending:
            self._flush_timer.start()

    # ------------------------------------------------------------------ counts
    def _schedule_counts(self, immediately: bool = False, quiet_only: bool = False) -> None:
        """Ask the server for counts when events pause, or at the latest COUNTS_MAX_MS after they went inexact.

        ``quiet_only`` only pushes back a reconcile already planned (events are still flowing).
        """
        if immediately:
            self._counts_due = None
            self._counts_timer.start(0)
            return
        now = time.monotonic()
        if not quiet_only and self._counts_due is None:
            self._counts_due = now + COUNTS_MAX_MS / 1000
        if self._counts_due is None:
            return
        wait_ms = int(min(COUNTS_QUIET_MS, max(0.0, self._counts_due - now) * 1000))
        self._counts_timer.start(wait_ms)

    def _on_counts_emit_timer_timeout(self) -> None:
        if self.counts.stats is not None:
            self.counts_changed.emit(self.counts.stats)

    def _on_counts_timer_timeout(self) -> None:
        if self._counting:
            self._counts_timer.start(COUNTS_QUIET_MS)
            return
        self._counts_due = None
        self._keep(asyncio.ensure_future(self.refresh_counts()))

    async def refresh_counts(self) -> None:
        self._counting = True
        try:
            stats = await self.connection.request("status_counts", **self.counts.others.query_args())
        except (JobdeckError, OSError, TimeoutError):
            return
        finally:
            self._counting = False
        self.counts.reset(stats)
        assert self.counts.stats is not None
        self.counts_changed.emit(self.counts.stats)
