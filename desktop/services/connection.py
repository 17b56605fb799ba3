"""The GUI's one link to the worker: requests over a control connection and events from a resumable stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.config import Paths
from engine.errors import WorkerNotRunning
from engine.events.client import EventStream, WorkerClient

log = logging.getLogger(__name__)

STREAM_MAX_BACKOFF_S = 2.0


class WorkerConnection(QObject):
    """Owns two websocket connections: one for request/response, one subscribed to events.

    Keeping them apart means a burst of events never delays a reply, and a reconnecting stream never fails a
    request that could have gone through on a fresh connection.
    """

    state_changed = Signal(str)  # connected | reconnecting | stopped
    job_events = Signal(object)  # a list of job.created / job.updated / job.deleted, in seq order
    progress = Signal(object)  # job.progress
    schedule_events = Signal(object)  # a list of schedule.updated
    worker_status = Signal(object)  # worker.status payload
    settings_event = Signal(object)  # settings.changed: the settings now in effect
    replay_done = Signal(int)

    def __init__(self, paths: Paths, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.state = "stopped"
        self._client: WorkerClient | None = None
        self._connect_lock = asyncio.Lock()
        self._events: EventStream | None = None
        self._stream_task: asyncio.Future[None] | None = None
        self._since = 0

    # ------------------------------------------------------------------ requests
    async def _request_client(self) -> WorkerClient:
        async with self._connect_lock:
            if self._client is None or self._client.closed.is_set():
                self._client = await WorkerClient.connect(self.paths)
            return self._client

    async def request(self, op: str, timeout: float = 60.0, **args: Any) -> Any:
        """One engine operation in the worker; raises the engine's own errors (ValidationError…)."""
        client = await self._request_client()
        return await client.request(op, timeout=timeout, **args)

    async def wait_until_available(self, max_wait_s: float = 60.0) -> bool:
        """Poll (with backoff) until a worker answers; used before the first snapshot only."""
        delay = 0.05
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_s
        while loop.time() < deadline:
            try:
                await self._request_client()
                return True
            except WorkerNotRunning:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        return False

    # ------------------------------------------------------------------ events
    @property
    def last_seq(self) -> int:
        return self._events.last_seq if self._events is not None else self._since

    def start_stream(self, since: int) -> None:
        """Subscribe from ``since``; the stream then follows the worker across restarts on its own."""
        if self._stream_task is not None:
            return
        self._since = since
        self._events = EventStream(
            self.paths, since, on_state=self._on_stream_state, max_backoff_s=STREAM_MAX_BACKOFF_S
        )
        self._stream_task = asyncio.ensure_future(self._events.run(self._on_batch))

    def _on_stream_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _on_batch(self, incoming: list[dict[str, Any]]) -> None:
        jobs: list[dict[str, Any]] = []
        for event in incoming:
            kind = event.get("type", "")
            if kind == "job.progress":
                self.progress.emit(event)
            elif kind.startswith("job."):
                jobs.append(event)
            elif kind == "schedule.updated":
                self.schedule_events.emit([event])
            elif kind == "worker.status":
                if jobs:  # keep the order the worker sent them in
                    self.job_events.emit(jobs)
                    jobs = []
                self.worker_status.emit(event.get("worker") or {})
            elif kind == "settings.changed":
                self.settings_event.emit(event.get("settings") or {})
            elif kind == "replay.done":
                if jobs:
                    self.job_events.emit(jobs)
                    jobs = []
                self.replay_done.emit(int(event.get("seq") or 0))
        if jobs:
            self.job_events.emit(jobs)

    async def close(self) -> None:
        stream = self._events
        if self._stream_task is not None:
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stream_task
            self._stream_task = None
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
