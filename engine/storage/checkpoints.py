"""SQLite WAL checkpoints off the commit path.

By default the connection whose commit pushes the write-ahead log past 1,000 pages copies the log back into the
database there and then: one commit in a hundred or so took milliseconds, and on average that was more than half of
what a ledger commit cost. A ``Checkpointer`` does that work on its own thread and connection shortly after
writes (SQLite releases the GIL meanwhile, so the writers go on), and only while writes happen: an idle process
has no timer. The writers keep a high automatic threshold as a backstop should this thread ever fall behind.

A passive checkpoint never makes the log start over: SQLite rewinds it only when a writer begins while every
frame is already copied back, and with the GUI or CLI and the worker writing in turn that moment never came. The
log grew by some 20 KB per job (90 MB after 4,000 no-op jobs), and every commit and every page read after another
process's commit slowed down with it. So once the log holds more than ``RESTART_FRAMES``, the checkpoint is a
RESTART one: it waits briefly for the write lock, copies what is left, and makes the next writer rewind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL_S = 0.02
BACKSTOP_PAGES = 20_000  # the writers' own wal_autocheckpoint while a Checkpointer runs (about 80 MB)
RESTART_FRAMES = 1_000  # about 4 MB of log
RESTART_WAIT_MS = 20  # how long a RESTART checkpoint may wait for writers and readers; else it tries next time


class Checkpointer:
    def __init__(self, path: Path | str, interval_s: float = INTERVAL_S) -> None:
        self.path = str(path)
        self.interval_s = interval_s
        self._timeout_s = 5.0
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.checkpoints = 0  # how many it ran: for tests and diagnostics
        self.restarts = 0  # how many of them made the log start over

    def poke(self) -> None:
        """A write committed: checkpoint soon. Cheap enough to call after every commit."""
        if self._thread is None:
            self._start()
        if not self._dirty.is_set():  # a plain read; set() takes a lock every commit would contend on
            self._dirty.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="jobdeck-checkpoint", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._dirty.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self._timeout_s, check_same_thread=False, isolation_level=None)
        try:
            while True:
                self._dirty.wait()
                if self._stop.wait(self.interval_s):
                    break
                self._dirty.clear()
                try:
                    self._checkpoint(conn)
                except sqlite3.Error:
                    log.debug("WAL checkpoint of %s deferred", self.path, exc_info=True)
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            log.warning("WAL checkpoints of %s stopped", self.path, exc_info=True)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if frames > RESTART_FRAMES:
            # Writers wait meanwhile (in ``sqlite_begin_immediate``): for a copy of what the passive pass left.
            conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            try:
                if conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0] == 0:
                    self.restarts += 1
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(self._timeout_s * 1000)}")
