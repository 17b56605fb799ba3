"""The GUI's one link to the worker: requests over a control connection and events from a resumable stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.config import Paths
from engine.errors import WorkerNotRunning
from engine.events.client import WorkerClient

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
    worker_status = Signal(object)  # worker.status payload
    replay_done = Signal(int)

    def __init__(self, paths: Paths, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.state = "stopped"
        self._client: WorkerClient | None = None
        self._connect_lock = asyncio.Lock()
        self._stream: WorkerClient | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._last_seq = 0
        self._incoming: list[dict[str, Any]] = []
        self._flush_scheduled = False

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
        return self._last_seq

    def start_stream(self, since: int) -> None:
        """Subscribe from ``since``; the stream then follows the worker across restarts on its own."""
        if self._stream_task is not None:
            return
        self._last_seq = since
        self._stream_task = asyncio.ensure_future(self._follow())

    def _on_stream_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    async def _follow(self) -> None:
        """Stay subscribed: reconnect with jittered backoff and resume after the last seq seen.

        Events are taken from the client's reader callback as they are decoded and handed on in one batch per
        loop turn, rather than one awaited iteration each: under qasync every asyncio hop is a Qt timer, and a
        burst of a thousand events would otherwise cost thousands of them on the GUI thread.
        """
        attempt = 0
        while True:
            try:
                client = await WorkerClient.connect(self.paths, on_event=self._on_raw_event)
            except WorkerNotRunning:
                self._on_stream_state("reconnecting" if attempt else "stopped")
                attempt += 1
                await asyncio.sleep(min(STREAM_MAX_BACKOFF_S, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))
                continue
            attempt = 0
            self._stream = client
            try:
                await client.subscribe(self._last_seq)
                self._on_stream_state("connected")
                await client.closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception:  # a connection torn mid-subscribe: resume from the last seq we saw
                log.warning("event stream interrupted; resuming from seq %d", self._last_seq, exc_info=True)
            finally:
                self._stream = None
            self._flush_incoming()
            self._on_stream_state("reconnecting")
            await asyncio.sleep(0.05)

    def _on_raw_event(self, event: dict[str, Any]) -> None:
        seq = event.get("seq")
        if isinstance(seq, int) and str(event.get("type", "")).startswith("job."):
            self._last_seq = max(self._last_seq, seq)
        self._incoming.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_incoming)

    def _flush_incoming(self) -> None:
        self._flush_scheduled = False
        incoming, self._incoming = self._incoming, []
        jobs: list[dict[str, Any]] = []
        for event in incoming:
            kind = event.get("type", "")
            if kind == "job.progress":
                self.progress.emit(event)
            elif kind.startswith("job."):
                jobs.append(event)
            elif kind == "worker.status":
                if jobs:  # keep the order the worker sent them in
                    self.job_events.emit(jobs)
                    jobs = []
                self.worker_status.emit(event.get("worker") or {})
            elif kind == "replay.done":
                if jobs:
                    self.job_events.emit(jobs)
                    jobs = []
                self.replay_done.emit(int(event.get("seq") or 0))
        if jobs:
            self.job_events.emit(jobs)

    async def close(self) -> None:
        stream, self._stream = self._stream, None  # taken first: the cancelled follower forgets it
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
