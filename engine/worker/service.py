"""The worker process: Huey's consumer threads, lease upkeep, crash recovery, the event server, shutdown.

Start-up order matters: take the worker locks (see ``engine.worker.lock``), recover the jobs of workers that are
gone (those the locks' last holders left ``running``, and any whose lease lapsed; their delivery notes tell which
attempts had already delivered: see ``engine.worker.delivery_notes``), rebuild the Huey queue from the
ledger (the ledger is the truth; Huey lost whatever was dequeued when the last worker died), then start consuming
and serving events.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from engine.config import HEARTBEAT_SECONDS, LEASE_SECONDS, Paths, load_settings, sqlite_file
from engine.events.server import EventServer
from engine.jobs import registry
from engine.operations import Operations
from engine.queue.consumer import EmbeddedConsumer
from engine.queue.huey_queue import JobQueue
from engine.spool import sweep
from engine.storage.integrity import LedgerDamaged, check, check_url
from engine.storage.repository import SEARCH_INDEX_BATCH, Ledger
from engine.storage.status import JobStatus
from engine.worker.courier import Courier, wait_for_couriers
from engine.worker.delivery_notes import DeliveryNotes, notes_path
from engine.worker.dispatch import Dispatch
from engine.worker.executor import Executor
from engine.worker.limits import StopDeadline, raise_open_file_limit
from engine.worker.lock import WorkerLocks
from engine.worker.scheduler import Scheduler

log = logging.getLogger(__name__)
SEARCH_INDEX_PAUSE_S = 10.0  # how long new jobs wait for the search index (searches read them in full meanwhile)
# How long a starting worker waits for a stopped worker's courier to finish the emails under way (normally a few
# milliseconds; longer only with a server that hangs): past it, recovery goes on and such an email may go twice.
COURIER_WAIT_S = 10.0
COURIER_EXIT_S = 2.0  # how long a stopping worker waits for its courier to finish what it was sending


class WorkerService:
    def __init__(
        self,
        paths: Paths | None = None,
        *,
        concurrency: int | None = None,
        port: int | None = None,
        grace_s: float | None = None,
        lease_s: float = LEASE_SECONDS,
        heartbeat_s: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.paths = paths or Paths()
        settings = load_settings(self.paths)
        self.concurrency = concurrency or settings.concurrency
        self.grace_s = settings.shutdown_grace_s if grace_s is None else grace_s
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.started_at = datetime.now(UTC)
        self.lock = WorkerLocks(self.paths.root, self.paths.worker_lock, sqlite_file(self.paths.database_url()))
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._deadline = StopDeadline(self.grace_s, self._stopped)  # armed by the process entry only
        self.ledger: Ledger | None = None
        self._damage_reported = threading.Event()  # SQLite said the ledger is damaged: the main thread checks it
        self._indexing: threading.Thread | None = None
        self.port = settings.event_port if port is None else port

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        registry.load()  # before anything is claimed: see its docstring
        raise_open_file_limit()
        self.lock.acquire({"pid": os.getpid(), "worker_id": self.worker_id, "home": str(self.paths.root)})
        check_url(self.paths.database_url())  # every page, once per start (a command checks a large ledger less)
        self.ledger = Ledger(self.paths.database_url())
        self.ledger.on_damage = self._damage_report
        self.notes = DeliveryNotes(notes_path(self.paths), self.ledger.running_attempts)
        self.notes.open()
        self.courier = Courier(self.notes.path, self.notes.read)
        self.queue = JobQueue(self.paths.queue)
        self.ops = Operations(self.paths, ledger=self.ledger, queue=self.queue)
        self.server = EventServer(self.ops, self, self.paths, port=self.port)
        self.executor = Executor(
            self.ledger,
            self.queue,
            self.paths,
            self.ops.credentials,
            self.worker_id,
            progress=self.server.publish_progress,
            notes=self.notes,
            courier=self.courier,
        )
        self.dispatch = Dispatch(
            self.ledger,
            self.queue,
            self.executor,
            lambda: load_settings(self.paths),
            self.worker_id,
            self.concurrency,
        )
        self.ledger.add_listener(self.server.notify)
        self.ledger.add_listener(self.executor.on_events)

        settings = load_settings(self.paths)
        wait_for_couriers(self.notes.path, COURIER_WAIT_S)  # a stopped worker's: its notes become final
        lost = self.ledger.lost_leases(self.lease_s, self.lock.dead_workers())
        recovered = self.executor.recover(lost, settings)
        if recovered:
            log.warning("recovered %d job(s) left running by a stopped worker", len(recovered))
        self.notes.compact()  # recovery has used the notes of the jobs it took over
        self._sweep_spool()
        self._rebuild_queue()
        self.scheduler = Scheduler(self.ledger, self.ops._outbox, self.ops._enqueued, prepare=self.ops.prepare_run)
        self.scheduler.start()
        self.server.start()
        self.consumer = EmbeddedConsumer(self.queue.huey, self.dispatch.step)
        self.consumer.start()
        self._maintenance = threading.Thread(target=self._maintain, name="jobdeck-maintenance", daemon=True)
        self._maintenance.start()
        self._indexing = threading.Thread(target=self._index_search, name="jobdeck-search-index", daemon=True)
        self._indexing.start()
        log.info(
            "worker %s started: %d thread(s), events on 127.0.0.1:%s",
            self.worker_id,
            self.concurrency,
            self.server.port,
        )

    def _sweep_spool(self) -> None:
        """Staged copies of jobs that ended while their cleanup did not run (a kill right after the commit)."""
        assert self.ledger is not None
        try:
            sweep(self.paths.spool, self.ledger.staged_paths())
        except Exception:
            log.exception("sweeping the spool failed; will retry")

    def _rebuild_queue(self) -> None:
        assert self.ledger is not None
        self.queue.flush()
        for row in self.ledger.waiting():
            eta = row.scheduled_time if row.status == JobStatus.SCHEDULED.value else None
            if row.status == JobStatus.RETRYING.value:
                eta = row.next_attempt_at
            self.queue.enqueue(row.id, row.priority, eta)
        old = self.paths.queue_alone
        if old != self.paths.queue:  # a queue file left by an earlier version: its messages were rebuilt above
            for path in (old, old.with_name(old.name + "-wal"), old.with_name(old.name + "-shm")):
                path.unlink(missing_ok=True)

    def _maintain(self) -> None:
        """Heartbeat our leases; sweep expired ones (ours if a thread wedged, others' on a shared database)."""
        assert self.ledger is not None
        last_sweep = time.monotonic()
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.ledger.heartbeat(self.worker_id)
                self.executor.check_cancel_requests()
                if time.monotonic() - last_sweep >= self.lease_s / 2:
                    last_sweep = time.monotonic()
                    self.executor.recover(self.ledger.lost_leases(self.lease_s), load_settings(self.paths))
                    self._sweep_spool()
                    self.consumer.check_health()
            except Exception:
                log.exception("maintenance pass failed; will retry")

    def _index_search(self) -> None:
        """Keep the search index up with the jobs (see ``Ledger.index_search``): at start-up every job there is,
        then, every ``SEARCH_INDEX_PAUSE_S``, the jobs that were there a pause ago. By then most have ended, and
        their result or error goes into the index with them, in one batch, instead of by a trigger in each job's
        own transitions. A backlog (an upgraded ledger, one loaded in bulk) is taken a batch at a time, leaving
        the write lock free between batches."""
        assert self.ledger is not None
        ledger = self.ledger
        through = ledger.max_id()
        while True:
            try:
                while ledger.index_search(through=through) == SEARCH_INDEX_BATCH:
                    if self._stop.wait(0.005):
                        return
                newest = ledger.max_id()
            except Exception:
                log.exception("indexing jobs for search failed; will retry")
                newest = through
            if self._stop.wait(SEARCH_INDEX_PAUSE_S):
                return
            through = newest

    def run_forever(self) -> int:
        """Block until SIGINT, SIGTERM or a ``shutdown`` command; then stop gracefully, and within the grace
        period plus a few seconds whatever the threads are doing (see ``StopDeadline``)."""
        self._install_signal_handlers()
        self.start()
        damaged = None
        try:
            while not self._stop.wait(0.5):
                if self._damage_reported.is_set() and (damaged := self._check_ledger()) is not None:
                    break
        except KeyboardInterrupt:
            pass
        self._deadline.arm()
        self.stop()
        if damaged is not None:
            raise damaged
        return 0

    def _damage_report(self, said: str) -> None:
        if not self._damage_reported.is_set():
            log.error("SQLite reports the ledger damaged (%s); checking it", said)
        self._damage_reported.set()

    def _check_ledger(self) -> LedgerDamaged | None:
        """Every page of the ledger, once SQLite has reported damage while the worker ran: damaged, the worker
        stops (the caller raises the error, one line); sound, it goes on."""
        assert self.ledger is not None
        self._damage_reported.clear()
        if self.ledger.sqlite_file is None:
            return None
        try:
            check(self.ledger.sqlite_file)
        except LedgerDamaged as exc:
            log.error("%s", exc)
            return exc
        log.warning("the ledger %s passed its check after SQLite reported damage; going on", self.ledger.sqlite_file)
        return None

    def _install_signal_handlers(self) -> None:
        def _handle(signum: int, _frame: Any) -> None:
            self._deadline.arm()
            log.info("received %s: stopping gracefully", signal.Signals(signum).name)
            self._stop.set()

        for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), _handle)

    def stop(self) -> None:
        """Take no new work; let running jobs finish within the grace period, then hand them back."""
        if self._stopped.is_set():
            return
        self._stop.set()
        self.scheduler.stop()
        self.dispatch.close()  # the dispatch keeps recording what finishes until the consumer stops below
        deadline = time.monotonic() + self.grace_s
        while self.dispatch.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = self.dispatch.running()
        if leftover:
            self.executor.request_stop()
            try:
                for job_id in leftover:
                    self.ledger.release(job_id, self.worker_id)  # type: ignore[union-attr]
                log.warning("grace period over: %d job(s) went back to the queue", len(leftover))
            except Exception as exc:  # a damaged ledger: their leases lapse, and the next worker recovers them
                log.error("grace period over: %d job(s) left running: %s", len(leftover), exc)
        self.consumer.request_stop()
        self.queue.wake()
        self.consumer.join(2.0)
        self.dispatch.shutdown()
        self.courier.close(COURIER_EXIT_S)
        self.server.stop()
        if self._indexing is not None:
            self._indexing.join(2.0)  # a batch under way commits before the ledger closes
        self.ledger.close()  # type: ignore[union-attr]
        self.notes.close()
        self.lock.release()
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    # ------------------------------------------------------------------ control commands
    def wake(self) -> None:
        self.queue.wake()
        self.scheduler.wake()  # a schedule may have changed in another process
        self.server.notify()

    def pause(self) -> None:
        self.queue.storage.pause(True)
        self.server.publish_status()

    def resume(self) -> None:
        self.queue.storage.pause(False)
        self.server.publish_status()

    def shutdown(self) -> None:
        self._stop.set()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "started_at": self.started_at.isoformat(),
            "concurrency": self.concurrency,
            "paused": self.queue.storage.paused,
            "running": self.dispatch.running(),
            "state": "stopping" if self._stop.is_set() else ("paused" if self.queue.storage.paused else "running"),
        }


def main(concurrency: int | None = None, port: int | None = None) -> int:
    from engine.errors import JobModuleError
    from engine.logs import configure_logging
    from engine.worker.lock import AlreadyRunning

    paths = Paths()
    configure_logging(paths, "worker")
    service = WorkerService(paths, concurrency=concurrency, port=port)
    try:
        return service.run_forever()
    except (AlreadyRunning, JobModuleError) as exc:
        print(f"jobdeck worker: {exc}", flush=True)
        return 1
