"""The worker's scheduler: makes the jobs of schedules' planned times, sleeping until the next one.

It holds the next time anything is due (one indexed read of the ledger, redone only after it acted or was woken:
a schedule changed here, or another process sent the worker a wake) and sleeps until then; it never scans the
schedules while idle. A sleep is a monotonic wait, which stops counting while the machine is suspended, so the
wait is cut into steps of at most ``WALL_CHECK_S`` and the wall clock is compared with it after each: a gap means
the machine slept, and what came due meanwhile was missed. Missed planned times — those before the scheduler
started, those that passed while the machine slept, and any found over ``LATE_S`` late — are handled by each
schedule's catch-up policy; the others run as planned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.storage.repository import Ledger
from engine.storage.schedules import SCHEDULE_EVENT_JOB_ID, Prepare

log = logging.getLogger(__name__)

WALL_CHECK_S = 1.0  # longest monotonic sleep between looks at the wall clock (a resume is seen this soon)
SLEPT_S = 1.5  # the wall clock ran this much further than a wait: the machine was suspended
LATE_S = 30.0  # a planned time found this late was missed (the worker was starved, or a suspend went unseen)
PASS_LIMIT = 200  # schedules one transaction batch looks at


class Scheduler:
    """One thread per worker. ``enqueued(jobs)`` hands the jobs it made to the queue (after their commit).

    ``wall`` and ``mono`` are its clocks (``time.time`` and ``time.monotonic``): a test moves the wall clock ahead of
    the monotonic one during a wait (``_sleep``), as a suspend of the machine does, without suspending anything."""

    def __init__(
        self,
        ledger: Ledger,
        outbox: Callable[[Any, dict[str, Any]], None],
        enqueued: Callable[[list[dict[str, Any]]], None],
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        prepare: Prepare | None = None,
    ) -> None:
        self.wall, self.mono = wall, mono
        self.prepare = prepare  # submits a run of a type that prepares its input (an upload reads its file)
        self.ledger = ledger
        self.outbox = outbox
        self.enqueued = enqueued
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.ledger.add_listener(self._on_events)
        self._thread = threading.Thread(target=self._run, name="jobdeck-scheduler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Something changed (a schedule, or the clock): look again at what is due."""
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        self.ledger.remove_listener(self._on_events)
        if self._thread is not None:
            self._thread.join(timeout)

    def _on_events(self, events: list[dict[str, Any]]) -> None:
        if any(event["job_id"] == SCHEDULE_EVENT_JOB_ID for event in events):
            self._wake.set()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    # ------------------------------------------------------------------ the loop
    def _run(self) -> None:
        missed_before: datetime | None = self.now()  # start-up: what is due now passed while no worker ran
        next_at: datetime | None = None
        stale = True
        while not self._stop.is_set():
            try:
                if missed_before is not None:
                    self.run_due(missed_before)
                    missed_before, stale = None, True
                if stale:  # woken (a change, or any submission from the CLI): one read says whether to act
                    self._wake.clear()
                    next_at = self.ledger.schedule_wakeup()
                    stale = False
                now = self.wall()
                if next_at is not None and next_at.timestamp() <= now:
                    self.run_due()
                    stale = True
                    continue
                # Nothing to wake for but a change (no schedule, or all paused for good): wait for the change.
                step = None if next_at is None else min(WALL_CHECK_S, next_at.timestamp() - now)
                mono = self.mono()
                if self._sleep(step):
                    stale = True
                if (self.wall() - now) - (self.mono() - mono) > SLEPT_S:
                    log.info("the machine slept: applying the schedules' catch-up policies")
                    missed_before = self.now()
            except Exception:
                log.exception("scheduler pass failed; will retry")
                stale = True
                self._stop.wait(1.0)

    def _sleep(self, step: float | None) -> bool:
        """Wait up to ``step`` seconds (None: until woken); True when woken. A suspend of the machine happens in
        here, as far as the loop can tell (a test overrides this to make one)."""
        return self._wake.wait(step)

    def run_due(self, missed_before: datetime | None = None) -> list[dict[str, Any]]:
        """Resume the schedules whose pause ended, then make the jobs of every planned time that is due."""
        now = self.now()
        late = now - timedelta(seconds=LATE_S)
        missed = late if missed_before is None else max(missed_before, late)
        self.ledger.schedule_resume_due(now)
        made: list[dict[str, Any]] = []
        while True:
            passes = self.ledger.schedule_fire(
                now, self.outbox, missed_before=missed, limit=PASS_LIMIT, prepare=self.prepare
            )
            jobs = [job for due in passes for job in due.jobs]
            if jobs:
                self.enqueued(jobs)
                made.extend(jobs)
            if len(passes) < PASS_LIMIT:
                return made
