"""One worker per data folder, and per SQLite ledger file: OS file locks that die with their process (kill -9 too).

The ledger's lock is a file of its own beside the ledger (``jobdeck.db.worker-lock``), so that a second data folder
pointed at the same file (``JOBDECK_DATABASE_URL``) finds it taken. It is never the ledger file itself: SQLite's
locks are POSIX locks, which belong to the process, and closing any descriptor of a file drops every such lock the
process holds on it. A PostgreSQL ledger takes no such lock: several workers may share it, each recovering only
the jobs whose lease lapsed.

A lock file names its holder (pid, worker id, data folder). Whoever takes the lock next knows that holder is dead:
its running jobs can be recovered at once, without waiting for their leases to lapse.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any


class AlreadyRunning(RuntimeError):
    pass


def ledger_lock_path(ledger_file: Path) -> Path:
    """The worker lock of a SQLite ledger: beside the file its path resolves to (symlinks followed)."""
    real = ledger_file.resolve()
    return real.with_name(real.name + ".worker-lock")


class WorkerLock:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what  # what it guards, for the message: "this data folder", "the ledger /x/jobdeck.db"
        self._fh: IO[str] | None = None
        self.previous: dict[str, Any] = {}  # what the last holder wrote (it is dead now that we hold the lock)

    def acquire(self, holder: dict[str, Any]) -> None:
        """Take the lock or raise ``AlreadyRunning`` naming the live holder; record ``holder`` in the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            try_lock(fh)
        except OSError:
            live = _read(fh)
            fh.close()
            who = f"pid {live['pid']}" if "pid" in live else "another process"
            if live.get("home"):
                who += f", data folder {live['home']}"
            raise AlreadyRunning(
                f"a worker is already running for {self.what} ({who}; lock {self.path}); stop that worker first"
            ) from None
        self.previous = _read(fh)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(holder))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None


class WorkerLocks:
    """The locks a worker holds for its data folder and its ledger, taken in that order, released together."""

    def __init__(self, home: Path, home_lock: Path, ledger_file: Path | None) -> None:
        self.locks = [WorkerLock(home_lock, f"this data folder {home}")]
        if ledger_file is not None:
            self.locks.append(WorkerLock(ledger_lock_path(ledger_file), f"the ledger {ledger_file}"))

    def acquire(self, holder: dict[str, Any]) -> None:
        try:
            for lock in self.locks:
                lock.acquire(holder)
        except AlreadyRunning:
            self.release()
            raise

    def dead_workers(self) -> set[str]:
        """Worker ids named by the locks' last holders: each held a lock that is ours now, so it has stopped."""
        return {str(lock.previous["worker_id"]) for lock in self.locks if lock.previous.get("worker_id")}

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()


def try_lock(fh: IO[str]) -> None:
    """Lock an open file exclusively at once, or raise OSError: the lock dies with its process (kill -9 too)."""
    if sys.platform == "win32":  # the form mypy checks per platform
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read(fh: IO[str]) -> dict[str, Any]:
    """The holder a lock file names: JSON, or a bare pid (as earlier versions wrote)."""
    try:
        fh.seek(0)
        text = fh.read().strip()
        data = json.loads(text) if text else {}
    except (OSError, ValueError):  # Windows: the holder's locked byte cannot be read
        return {}
    if isinstance(data, int):
        return {"pid": data}
    return data if isinstance(data, dict) else {}
