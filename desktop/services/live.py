"""Feeds the jobs model: a snapshot through `list`, older pages on demand, then events applied in coalesced batches."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from desktop.models.jobs import Filter, JobTableModel
from desktop.services.connection import WorkerConnection
from engine.errors import JobdeckError

log = logging.getLogger(__name__)

FIRST_PAGE = 200
MORE_PAGE = 500
FLUSH_MS = 50  # at most ~20 model updates (and so redraws) a second, however fast events arrive
COUNTS_MS = 700


class LiveJobs(QObject):
    """The only writer of the jobs model. Events that arrive while a snapshot is loading wait in the buffer and are
    applied after it if their seq is newer than the snapshot's, so nothing is missed and nothing is reloaded."""

    loading_changed = Signal(bool)
    counts_changed = Signal(object)  # the `stats` result
    events_applied = Signal(object)  # list of job events in the batch just applied
    failed = Signal(str)

    def __init__(self, connection: WorkerConnection, model: JobTableModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connection = connection
        self.model = model
        self.loading = False
        self.loaded_once = False
        self.stats: dict[str, Any] | None = None
        self._buffer: list[dict[str, Any]] = []
        self._progress: dict[int, dict[str, Any]] = {}
        self._generation = 0
        self._counting = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(COUNTS_MS)
        self._counts_timer.timeout.connect(self._on_counts_timer_timeout)
        connection.job_event.connect(self._on_job_event)
        connection.progress.connect(self._on_progress)
        model.fetch_requested.connect(self._on_fetch_requested)

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
        try:
            result = await self.connection.request("list", limit=FIRST_PAGE, **filt.list_args())
        except (JobdeckError, OSError, TimeoutError) as exc:
            if generation == self._generation:
                self._set_loading(False)
                self.failed.emit(f"Could not load jobs: {exc}")
            return False
        if generation != self._generation:
            return False  # a newer filter superseded this one
        self.model.reset(result["jobs"], seq=int(result.get("seq") or 0), page_size=FIRST_PAGE, filt=filt)
        self.loaded_once = True
        self._set_loading(False)
        self.connection.start_stream(int(result.get("seq") or 0))
        self._flush()
        self._schedule_counts(immediately=True)
        return True

    def _set_loading(self, loading: bool) -> None:
        if loading != self.loading:
            self.loading = loading
            self.loading_changed.emit(loading)

    def _on_fetch_requested(self, offset: int) -> None:
        self._keep(asyncio.ensure_future(self._fetch(offset, self._generation)))

    async def _fetch(self, offset: int, generation: int) -> None:
        try:
            result = await self.connection.request(
                "list", limit=MORE_PAGE, offset=offset, **self.model.filter.list_args()
            )
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.model.fetch_failed()
            self.failed.emit(f"Could not load more jobs: {exc}")
            return
        if generation == self._generation:
            self.model.append_page(result["jobs"], MORE_PAGE)

    # ------------------------------------------------------------------ events
    def _on_job_event(self, event: dict[str, Any]) -> None:
        self._buffer.append(event)
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_progress(self, event: dict[str, Any]) -> None:
        self._progress[int(event["job_id"])] = event.get("progress") or {}
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_flush_timer_timeout(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self.loading or not self.loaded_once:
            return  # kept until the snapshot lands
        events, self._buffer = self._buffer, []
        progress, self._progress = self._progress, {}
        if events:
            self.model.apply_events(events)
            self.events_applied.emit(events)
            self._schedule_counts()
        if progress:
            self.model.apply_progress(progress)

    # ------------------------------------------------------------------ counts
    def _schedule_counts(self, immediately: bool = False) -> None:
        if immediately:
            self._counts_timer.start(0)
        elif not self._counts_timer.isActive():
            self._counts_timer.start(COUNTS_MS)

    def _on_counts_timer_timeout(self) -> None:
        if self._counting:
            self._counts_timer.start(COUNTS_MS)
            return
        self._keep(asyncio.ensure_future(self.refresh_counts()))

    async def refresh_counts(self) -> None:
        self._counting = True
        try:
            self.stats = await self.connection.request("stats")
        except (JobdeckError, OSError, TimeoutError):
            return
        finally:
            self._counting = False
        self.counts_changed.emit(self.stats)
