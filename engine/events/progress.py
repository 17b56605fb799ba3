"""Coalescing of live job progress: at most one event per job per interval, always ending on the latest value.

Runs on the event server's loop only (the server hands reports over thread-safely). Progress is never stored:
a client that reconnects sees the next report, not the missed ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

INTERVAL_S = 0.1  # at most 10 progress events a second per job
RATE_AFTER_S = 0.2  # too early for a meaningful rate before this


@dataclass
class _JobProgress:
    started: float
    first_done: int
    last_sent: float = float("-inf")
    latest: dict[str, Any] | None = None
    timer: asyncio.TimerHandle | None = None


class ProgressCoalescer:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        emit: Callable[[int, dict[str, Any]], None],
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.loop = loop
        self.emit = emit
        self.interval_s = interval_s
        self._jobs: dict[int, _JobProgress] = {}

    def report(self, job_id: int, data: dict[str, Any], now: float) -> None:
        """A report from a job: send it now if the job's interval has passed, else keep it for the timer."""
        state = self._jobs.get(job_id)
        done = _number(data.get("done")) or 0
        if state is None or done < state.first_done:  # a new attempt starts over
            if state is not None and state.timer is not None:
                state.timer.cancel()
            state = self._jobs[job_id] = _JobProgress(started=now, first_done=int(done))
        elapsed = now - state.started
        rate = (done - state.first_done) / elapsed if elapsed >= RATE_AFTER_S else None
        total = _number(data.get("total"))
        eta = (total - done) / rate if rate and total is not None else None
        state.latest = {**data, "done": done, "total": total, "rate": rate, "eta_s": eta}
        wait = state.last_sent + self.interval_s - self.loop.time()
        if wait <= 0:
            self._flush(job_id)
        elif state.timer is None:
            state.timer = self.loop.call_later(wait, self._flush, job_id)

    def finished(self, job_id: int) -> None:
        """The job left ``running``: drop what is pending, so no progress follows its final state."""
        state = self._jobs.pop(job_id, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()

    def _flush(self, job_id: int) -> None:
        state = self._jobs.get(job_id)
        if state is None:
            return
        state.timer = None
        if state.latest is None:
            return
        state.last_sent = self.loop.time()
        latest, state.latest = state.latest, None
        self.emit(job_id, latest)


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
