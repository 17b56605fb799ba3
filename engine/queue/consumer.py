"""Huey's consumer, run inside our worker process: its scheduler, and one worker thread that feeds the jobs.

Huey's ``Consumer.run()`` installs signal handlers and so must own the main thread; the worker service owns
signals and shutdown instead (graceful stop, release of unfinished jobs to the ledger), so it starts the
consumer's threads and stops them itself.

Huey's worker threads each take one message, run its task and go back for the next. Ours is a single thread
whose loop body the worker service supplies (``engine.worker.dispatch``): it takes messages several at a time
and hands the jobs to a pool of job threads, so that the ledger's bookkeeping for many jobs shares a
transaction, as dramatiq's consumer threads prefetch messages and acknowledge them in batches for its workers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from huey import Huey
from huey.consumer import Consumer, Scheduler, Worker

MAX_TICK_S = 1.0


class PreciseScheduler(Scheduler):
    """Moves due tasks to the queue at their ETA rather than on Huey's next one-second tick.

    Huey's scheduler polls every second, so a scheduled job started 0.3–1.0 s late (more on a loaded machine).
    This one sleeps until the earliest ETA (at most a second) and is woken when a new ETA is added.
    """

    def loop(self, now: datetime | None = None) -> None:
        failed = False
        try:
            for task in self.huey.read_schedule(now):
                self.huey.enqueue(task)
        except Exception:
            # A full disk fails every move: without a pause here the next ETA is still due, and the loop would
            # spin, logging thousands of lines a second. It tries again on the next tick.
            failed = True
            self._logger.exception("Error moving scheduled tasks to the queue.")
        storage: Any = self.huey.storage
        delay = MAX_TICK_S
        try:
            next_ts = storage.next_schedule_timestamp()
        except Exception:
            next_ts = None
        if next_ts is not None and not failed:
            delay = min(MAX_TICK_S, max(0.0, next_ts - self.huey._get_timestamp().timestamp()))
        if delay > 0 and not self.stop_flag.is_set():
            storage.wait_for_schedule(delay)


class FeedingWorker(Worker):
    """Huey's worker thread with the worker service's loop body (which catches and logs its own errors)."""

    def __init__(self, body: Callable[[], None], **kwargs: Any) -> None:
        self.body = body
        super().__init__(**kwargs)

    def loop(self, now: datetime | None = None) -> None:
        self.body()


class EmbeddedConsumer(Consumer):
    scheduler_class = PreciseScheduler

    def __init__(self, huey: Huey, body: Callable[[], None]) -> None:
        self._body = body
        super().__init__(
            huey,
            workers=1,
            periodic=False,
            worker_type="thread",
            scheduler_interval=1,
            check_worker_health=True,
            health_check_interval=5,
        )

    def _create_worker(self) -> FeedingWorker:
        return FeedingWorker(
            self._body,
            huey=self.huey,
            stop_flag=self.stop_flag,
            default_delay=self.default_delay,
            max_delay=self.max_delay,
            backoff=self.backoff,
        )

    def _set_signal_handlers(self) -> None:
        """Signals belong to the worker service."""

    def check_health(self) -> None:
        """Replace dead worker threads; called from the service's maintenance loop."""
        self.check_worker_health()

    def request_stop(self) -> None:
        self.stop_flag.set()

    def join(self, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        threads = [t for _, t in self.worker_threads] + [self.scheduler]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)
