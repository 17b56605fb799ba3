"""Coalescing of live job progress: at most one event per job per interval, always ending on the latest value, with
the rate and the time left worked out here, once, for every client (the window's table, its Transfers view and
`jobdeck watch` all show these figures rather than each estimating its own).

The rate is measured over the last ``RATE_WINDOW_S`` seconds, not since the attempt began: when the link speeds
up or slows down (a bandwidth limit changed, a congested network), the time left follows within seconds instead of
averaging the whole run. Runs on the event server's loop only (the server hands reports over thread-safely).
Progress is never stored: a client that reconnects sees the next report, not the missed ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

INTERVAL_S = 0.1  # at most 10 progress events a second per job
RATE_AFTER_S = 0.2  # too early for a meaningful rate before this
RATE_WINDOW_S = 5.0  # the rate is what was sent over about this long


@dataclass
class _JobProgress:
    first_done: int
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (time, done), oldest first
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
            state = self._jobs[job_id] = _JobProgress(first_done=int(done))
        rate = _windowed_rate(state.samples, now, float(done))
        total = _number(data.get("total"))
        eta = max(0.0, (total - done) / rate) if rate and total is not None else None
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


def _windowed_rate(samples: deque[tuple[float, float]], now: float, done: float) -> float | None:
    """Bytes (or units) a second over the last ``RATE_WINDOW_S``; ``None`` until ``RATE_AFTER_S`` has passed.

    ``samples`` keeps one sample older than the window, so the span measured is always at least the window once
    the run is that old, even when reports are sparse."""
    samples.append((now, done))
    while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
        samples.popleft()
    then, done_then = samples[0]
    span = now - then
    return max(0.0, done - done_then) / span if span >= RATE_AFTER_S else None


def _number(value: Any) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
