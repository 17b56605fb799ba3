"""`--wait`: follow jobs to their end from the worker's events, and end with a status that says how they ended.

The events are the ones the window follows (a subscription replayed from a seq read before the jobs were made or
retried, so no change is missed, and resumed across worker restarts). On a terminal the state and an upload's bytes,
rate and time left stay on one line rewritten in place; anywhere else each change of state is a line of its own.

Exit status: 0 when every job succeeded, 1 when one failed, 3 when one was canceled or deleted (and none failed),
130 when interrupted (the jobs go on).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from engine.events import schema
from engine.events.client import EventStream
from engine.inert import inert
from engine.paths import Paths

ENDED = ("succeeded", "failed", "canceled")
FAILED_STATUS = 1
CANCELED_STATUS = 3


class Follower:
    """The jobs' latest state and progress, from their events; draws them on ``out``."""

    def __init__(self, jobs: Iterable[dict[str, Any]], out: TextIO, live: bool) -> None:
        self.jobs: dict[int, dict[str, Any]] = {job["id"]: job for job in jobs}  # as the command left them
        self.ended: dict[int, str] = {}  # job id → succeeded, failed, canceled or deleted
        self.progress: dict[int, dict[str, Any]] = {}
        self.out = out
        self.live = live  # a terminal: one line rewritten in place
        self._drawn = False

    @property
    def done(self) -> bool:
        return len(self.ended) == len(self.jobs)

    def status(self) -> int:
        outcomes = set(self.ended.values())
        if "failed" in outcomes:
            return FAILED_STATUS
        if outcomes & {"canceled", "deleted"}:
            return CANCELED_STATUS
        return 0

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == schema.JOB_PROGRESS:
            if event.get("job_id") in self.jobs and event["job_id"] not in self.ended:
                self.progress[event["job_id"]] = event.get("progress") or {}
                self._draw_live()
            return
        if kind not in (schema.JOB_CREATED, schema.JOB_UPDATED, schema.JOB_DELETED):
            return
        job = event.get("job") or {}
        job_id = job.get("id")
        if job_id not in self.jobs or job_id in self.ended:
            return
        before = self.jobs[job_id].get("status")
        self.jobs[job_id] = job
        status = "deleted" if kind == schema.JOB_DELETED else job.get("status")
        if status != "running":
            self.progress.pop(job_id, None)
        if status in (*ENDED, "deleted"):
            self.ended[job_id] = str(status)
        if status != before or kind == schema.JOB_DELETED:
            self._line(_change_line(job, str(status)))

    def _line(self, text: str) -> None:
        """A change of state: a line that stays (on a terminal, above the live line)."""
        if self.live and self._drawn:
            self.out.write("\r\x1b[K")
        self.out.write(inert(text) + "\n")
        self._drawn = False
        self._draw_live()

    def _draw_live(self) -> None:
        if not self.live or self.done:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be rewritten in place
        self.out.write("\r\x1b[K" + inert(self._live_text())[:width])
        self.out.flush()
        self._drawn = True

    def _live_text(self) -> str:
        counts: dict[str, int] = {}
        for job_id, job in self.jobs.items():
            state = self.ended.get(job_id) or job.get("status") or "pending"
            counts[state] = counts.get(state, 0) + 1
        states = ", ".join(f"{n} {state}" for state, n in counts.items())
        if len(self.jobs) > 1:
            text = f"{len(self.jobs)} jobs: {states}"
        else:
            text = f"job {next(iter(self.jobs))}: {states.partition(' ')[2]}"
        if self.progress:
            size = _size if all(p.get("unit") == "bytes" for p in self.progress.values()) else _count
            done = sum(float(p.get("done") or 0) for p in self.progress.values())
            totals = [p.get("total") for p in self.progress.values()]
            rates = [p.get("rate") for p in self.progress.values()]
            text += f" · {size(done)}"
            if all(isinstance(t, int | float) for t in totals):
                total = sum(float(t) for t in totals if t is not None)
                text += f" of {size(total)}" + (f" ({100 * done / total:.0f} %)" if total else "")
            if all(isinstance(r, int | float) for r in rates):
                rate = sum(float(r) for r in rates if r is not None)
                text += f" · {size(rate)}/s"
                etas = [p.get("eta_s") for p in self.progress.values()]
                if all(isinstance(e, int | float) for e in etas):
                    text += f" · {_duration(max(float(e) for e in etas if e is not None))} left"
        return text

    def finish(self) -> None:
        if self.live and self._drawn:
            self.out.write("\r\x1b[K")
        self.out.flush()


def _change_line(job: dict[str, Any], status: str) -> str:
    text = f"job {job.get('id')}: {status}"
    if status in ("failed", "retrying") and job.get("error"):
        text += f" — {job['error']}"
    if status == "retrying" and job.get("next_attempt_at"):
        text += f" (next attempt {job['next_attempt_at'][11:19]} UTC)"
    result = job.get("result") or {}
    if status == "succeeded" and isinstance(result, dict):
        if result.get("file_url"):
            text += f" → {result['file_url']}"
        elif result.get("skipped"):
            text += f" (skipped: {result['skipped']})"
    return text


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _count(n: float) -> str:
    """Progress in a unit other than bytes (a job type that counts items, say)."""
    return f"{n:,.0f}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole // 60 % 60:02d} min"


async def _follow(paths: Paths, follower: Follower, since: int) -> None:
    def on_state(state: str) -> None:
        if state == "stopped" and not told:
            told.append(True)
            print("jobdeck: waiting for a worker to start; the job runs when one does", file=sys.stderr, flush=True)

    told: list[bool] = []
    stream = EventStream(paths, since, on_state=on_state)
    try:
        async for event in stream.events():
            follower.on_event(event)
            if follower.done:
                return
    finally:
        await stream.close()


def wait_for(
    paths: Paths, jobs: Iterable[dict[str, Any]], since: int, out: TextIO | None = None
) -> tuple[int, Follower]:
    """Follow ``jobs`` (as the command made or retried them) through the events after ``since`` until each has
    ended: the exit status and the follower (``jobs``: each job as it ended). ``out`` None: print nothing."""
    stream = out or io.StringIO()  # ``--json``: the lines go nowhere
    follower = Follower(jobs, stream, live=out is not None and out.isatty())
    try:
        asyncio.run(_follow(paths, follower, since))
    finally:
        follower.finish()
    return follower.status(), follower
