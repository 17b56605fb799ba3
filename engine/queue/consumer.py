"""Huey's consumer, run inside our worker process: thread workers, no signal handlers of its own.

Huey's ``Consumer.run()`` installs signal handlers and so must own the main thread; the worker service owns
signals and shutdown instead (graceful stop, release of unfinished jobs to the ledger), so it starts the
consumer's threads and stops them itself.
"""

from __future__ import annotations

from huey import Huey
from huey.consumer import Consumer


class EmbeddedConsumer(Consumer):
    def __init__(self, huey: Huey, workers: int) -> None:
        super().__init__(
            huey,
            workers=workers,
            periodic=False,
            worker_type="thread",
            scheduler_interval=1,
            check_worker_health=True,
            health_check_interval=5,
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
