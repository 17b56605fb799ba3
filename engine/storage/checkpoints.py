"""SQLite WAL checkpoints off the commit path, each one holding the write lock.

By default the connection whose commit pushes the write-ahead log past 1,000 pages copies the log back into the
database there and then, and that occasional slow commit made up much of what a ledger commit cost on average.
A ``Checkpointer`` does that work on its own thread and connection shortly after
writes (SQLite releases the GIL meanwhile), and only while writes happen: an idle process has no timer.

Every checkpoint is a RESTART one, and no connection of ours checkpoints any other way (``tune_connection`` turns
SQLite's automatic checkpoints off):

- SQLite before 3.51.3 (Debian 12 ships 3.40) has the "WAL-reset bug": a checkpoint that starts while another
  connection's commit rewinds the log can record frames as copied that were not, and the database is corrupt. A
  passive checkpoint runs beside the writers, so with the worker and the GUI or CLI writing and checkpointing the
  same files the race was there to be lost. A RESTART checkpoint takes the write
  lock before it reads the log's state, so no commit can rewind the log under it.
- A passive checkpoint never makes the log start over either: SQLite rewinds it only when a writer begins while
  every frame is already copied back, and with two processes writing in turn that moment never came. The log grew
  with every job, and every commit and page read slowed down with it. A
  RESTART checkpoint also waits for readers to leave the log, so the next writer rewinds it.

Writers wait while a checkpoint runs (in ``sqlite_begin_immediate``), and a checkpoint syncs the log and the database
to disk, which takes longer while other files are being written (an upload's part threads record each part in the
ledger while the S3 server spools the parts to disk). So a checkpoint is due only after ``BATCH_COMMITS`` commits of
this process, or once its writes pause for ``IDLE_S``, not on a timer (a short pause let the gap between two
upload parts start one, which slowed uploads); and it may wait only ``WAIT_MS`` for the lock and the readers, else
it tries again later.

A checkpoint's first step syncs the log, while writers wait. The ledger syncs it after each of its commits
(``sync_log``: see ``engine.storage.database.tune_writer``), but the Huey queue's own commits do not (its messages
are rebuilt from the ledger at start-up), so the checkpointer syncs the log file first, without the lock, and the
checkpoint's own sync finds little left to write, and the lock is held for a fraction of the time.

A process has one checkpointer per database file (``shared``): the ledger and the Huey queue live in one SQLite
file, and two checkpointers of one process would each count only half its commits and take turns at the lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

BATCH_COMMITS = 200  # commits by this process that make a checkpoint due at once
IDLE_S = 2.0  # else, how long this process's writes must pause first (an upload's parts come every ≈ 0.1–0.5 s)
POLL_S = 0.05  # how often a checkpointer with writes to copy looks whether a checkpoint is due
WAIT_MS = 20  # how long a checkpoint may wait for writers and readers before it gives up until the next round

_shared: dict[str, Checkpointer] = {}
_shared_lock = threading.Lock()


def shared(path: Path | str) -> Checkpointer:
    """This process's checkpointer of the database file at ``path``; ``close()`` it when done (the last user's
    close stops it)."""
    key = os.path.realpath(path)
    with _shared_lock:
        checkpointer = _shared.get(key)
        if checkpointer is None:
            checkpointer = _shared[key] = Checkpointer(key)
        else:
            checkpointer._users += 1
        return checkpointer


class Checkpointer:
    def __init__(self, path: Path | str, idle_s: float = IDLE_S, batch_commits: int = BATCH_COMMITS) -> None:
        self.path = str(path)
        self.idle_s = idle_s
        self.batch_commits = batch_commits
        self._commits = 0  # since the last checkpoint; a plain counter (a lost increment only delays one)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.checkpoints = 0  # how many it ran to the end: for tests and diagnostics
        self.busy = 0  # how many gave up waiting for writers or readers
        self._users = 1  # see ``shared``

    def poke(self) -> None:
        """A write committed: checkpoint soon. Cheap enough to call after every commit."""
        if self._thread is None:
            self._start()
        self._commits += 1
        if not self._dirty.is_set():  # a plain read; set() takes a lock every commit would contend on
            self._dirty.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="jobdeck-checkpoint", daemon=True)
                self._thread.start()

    def close(self) -> None:
        with _shared_lock:
            self._users -= 1
            if self._users > 0:
                return
            if _shared.get(self.path) is self:
                del _shared[self.path]
        self._stop.set()
        self._dirty.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=WAIT_MS / 1000, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            while True:
                self._dirty.wait()
                if self._due():
                    break
                self._dirty.clear()
                self._commits = 0
                if not self._checkpoint(conn):
                    self._dirty.set()  # the writes are still to be copied: try again next round
            self._checkpoint(conn)
        except sqlite3.Error:
            log.warning("WAL checkpoints of %s stopped", self.path, exc_info=True)
        finally:
            conn.close()

    def _due(self) -> bool:
        """Wait until a checkpoint is due (see the module); True if the checkpointer was closed meanwhile. Looks
        every ``POLL_S``, and only while this process has written since the last checkpoint."""
        seen, changed_at = self._commits, time.monotonic()
        while self._commits < self.batch_commits:
            if self._stop.wait(POLL_S):
                return True
            if self._commits != seen:
                seen, changed_at = self._commits, time.monotonic()
            elif time.monotonic() - changed_at >= self.idle_s:
                return False
        return self._stop.is_set()

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        self._sync_log()
        try:
            busy = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
        except sqlite3.OperationalError:  # e.g. a moment of WAL recovery by another connection
            log.debug("WAL checkpoint of %s deferred", self.path, exc_info=True)
            busy = 1
        if busy:
            self.busy += 1
            return False
        self.checkpoints += 1
        return True

    def sync_log(self) -> None:
        """Put every commit so far on disk: the ledger's writer calls it after each commit, outside the write lock
        (see ``engine.storage.database.tune_writer``). Raises ``OSError`` if the disk fails: not durable."""
        try:
            _fsync(self.path + "-wal")
        except FileNotFoundError:  # no log: the last connection closed and checkpointed it, so the file holds all
            _fsync(self.path)

    def _sync_log(self) -> None:
        """Flush the log's pending writes to disk before the checkpoint takes the lock (see the module)."""
        with contextlib.suppress(OSError):  # no log yet, or a failing disk: the checkpoint syncs (and says) itself
            _fsync(self.path + "-wal")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDWR)  # read-write: Windows flushes only a handle that may write
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
