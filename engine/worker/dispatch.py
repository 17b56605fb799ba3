"""Feeding the job threads: take due messages, claim their jobs, record successes, many jobs per transaction.

One thread (the Huey consumer's worker, see ``engine.queue.consumer``) does the worker's routine ledger writes, and
the job threads only run jobs. Each pass takes as many messages as there are idle job threads and, in one ledger
transaction, records the jobs that succeeded since the last pass and claims the new ones (``Ledger.settle``). With
the queue in the ledger's SQLite file (the default), the messages are only looked at first and leave the queue in
that same transaction (see ``Dispatch.__init__``). When every job thread took its own message, claimed its job and
recorded its outcome, a no-op job cost three transactions and the threads spent much of their time handing each
other the GIL and the write lock; here a commit serves every job that finished or started since the last one.

A success waits in memory until the next pass commits it, a few milliseconds: a worker killed in between runs
the job again, exactly as if it had been killed while the job ran. That is harmless for a job a second run does
not repeat (an upload recognises its object), but not for an email: a job whose effect cannot be taken back
reports it through ``ctx.delivered`` (or runs it through ``ctx.deliver``), and the job thread commits that success
at once (see ``engine.worker.executor``).

While work streams in, a pass that found fewer messages than idle threads is followed by a short pause
(``BUSY_PAUSE_S``) before the next. Without it, no-op jobs submitted one by one went one or two per pass: the
passes held the ledger's write lock often, and a submitting process kept meeting it. With it, most passes serve
several jobs, fewer transactions hold the lock, a submitter meets it less often, and the worker spends less CPU per
job (figures in docs/benchmarks.md, bench/queue.py). An idle worker does not pause: a job submitted to it is taken
at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from queue import SimpleQueue

from engine.config import Settings
from engine.queue.huey_queue import JobQueue
from engine.storage.repository import Claim, Ledger
from engine.worker.executor import Executor, Success

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 0.5  # after a pass failed (say, the database was unreachable)
BUSY_PAUSE_S = 0.002  # after a pass that left threads idle while jobs were arriving (see the module)


class Dispatch:
    def __init__(
        self,
        ledger: Ledger,
        queue: JobQueue,
        executor: Executor,
        settings: Callable[[], Settings],
        worker_id: str,
        concurrency: int,
    ) -> None:
        self.ledger = ledger
        self.queue = queue
        self.executor = executor
        self.settings = settings
        self.worker_id = worker_id
        self.concurrency = concurrency
        # With the queue in the ledger's SQLite file, a pass looks at the messages without taking them, and they
        # leave the queue in the transaction that claims their jobs: one write transaction a pass instead of two,
        # and a pass that fails leaves them where they were (a separate take held the write lock that a
        # submitting process then waited out). Otherwise they are taken first, in a transaction of their own.
        self._in_ledger = queue.lives_in(ledger.sqlite_file)
        # Daemon threads: a job that ignores the grace period must not hold the process open (the job goes back
        # to the queue; see WorkerService.stop). ThreadPoolExecutor's threads are joined at interpreter exit.
        self._jobs: SimpleQueue[tuple[Claim, Settings] | None] = SimpleQueue()
        self._lock = threading.Lock()
        # Held by a pass from its look at the queue until its claims are with the job threads, and by close(): a
        # job claimed (so `running` in the ledger) when shutdown begins is started and gets the grace period.
        self._pass_lock = threading.Lock()
        self._running: set[int] = set()  # claimed by us, outcome not yet in the ledger
        self._busy = 0  # job threads running a job
        self._succeeded: list[Success] = []
        self._closing = False
        self._threads = [
            threading.Thread(target=self._job_thread, name=f"jobdeck-job-{n + 1}", daemon=True)
            for n in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    def close(self) -> None:
        """Shutting down: claim nothing more, but keep recording what finishes."""
        with self._pass_lock, self._lock:
            self._closing = True
        self.queue.wake()

    def shutdown(self) -> None:
        """Let idle job threads end (a thread still running a job ends with the process)."""
        for _ in self._threads:
            self._jobs.put(None)

    def step(self) -> None:
        """One pass; the consumer thread's loop body. Never raises: the thread must outlive a bad moment."""
        try:
            if self._pass():
                time.sleep(BUSY_PAUSE_S)
        except Exception:
            log.exception("dispatch pass failed; will retry")
            time.sleep(RETRY_PAUSE_S)

    def _pass(self) -> bool:
        """Returns whether to pause before the next pass (see ``BUSY_PAUSE_S``)."""
        generation = self.queue.storage.generation  # read before looking, so no wake-up falls between
        with self._pass_lock:
            work = self._settle()
        if work is None:
            self.queue.wait_for_work(generation)
            return False
        return work

    def _settle(self) -> bool | None:
        """Record successes and claim due jobs; None when there was nothing to do."""
        with self._lock:
            succeeded, self._succeeded = self._succeeded, []
            idle = 0 if self._closing else self.concurrency - self._busy
        peeked = None
        if self._in_ledger:  # (neither looks at the queue for a limit of 0)
            peeked = self.queue.peek(idle)
            taken = peeked.due
        else:
            taken = self.queue.take(idle)
        remove = partial(self.queue.remove, peeked) if peeked is not None and peeked.row_ids else None
        if not succeeded and not taken and remove is None:
            return None
        try:
            settings = self.settings() if taken else None  # before the claims: a bad config file strands nothing
            done, claims = self.ledger.settle(
                self.worker_id,
                [(s.job, s.result) for s in succeeded],
                [job_id for job_id, _ in taken],
                remove,
            )
        except Exception:
            with self._lock:
                self._succeeded[:0] = succeeded
            if peeked is None:
                for job_id, priority in taken:  # Huey forgot them when we took them; the ledger did not
                    self.queue.enqueue(job_id, priority)
            raise
        if peeked is not None:
            self.queue.schedule(peeked.later)
        with self._lock:
            self._running.difference_update(s.job["id"] for s in succeeded)
        # Every claimed job reaches a job thread before anything below may raise: a claimed job that nobody runs
        # would keep its lease (the heartbeat renews all of ours) until the worker stops.
        early = []
        for (job_id, _), claim in zip(taken, claims, strict=True):
            if claim.job is not None:
                assert settings is not None
                self._start(claim, settings)
            elif claim.not_before is not None:  # an early message (e.g. a duplicate): put it back for its time
                early.append((job_id, claim))
        for success, job in zip(succeeded, done, strict=True):
            self.executor.succeeded(success, job)
        for job_id, claim in early:
            self.queue.enqueue(job_id, claim.priority, claim.not_before)
        return 0 < len(taken) < idle

    def _start(self, claim: Claim, settings: Settings) -> None:
        assert claim.job is not None
        with self._lock:  # (not closing: close() waits for this pass)
            self._busy += 1
            self._running.add(claim.job["id"])
        self._jobs.put((claim, settings))

    def _job_thread(self) -> None:
        while (work := self._jobs.get()) is not None:
            self._run(*work)

    def _run(self, claim: Claim, settings: Settings) -> None:
        assert claim.job is not None
        job_id = claim.job["id"]
        success = None
        try:
            success = self.executor.run(claim, settings)
        except Exception:  # the executor records every job's failure; this would be a bug in it
            log.exception("running job %s failed outside the job", job_id)
        finally:
            with self._lock:
                self._busy -= 1
                if success is not None:
                    self._succeeded.append(success)
                else:
                    self._running.discard(job_id)
            self.queue.wake()
