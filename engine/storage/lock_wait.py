"""Waiting for another process's write lock on a SQLite file: said on stderr after a second, given up after a limit.

A command that waits in silence looks hung, and one that fails after the wait with SQLite's "database is locked"
says neither which file nor who holds it. So a wait longer than ``NOTICE_AFTER_S`` prints one line naming the file
and, where the system tells (Linux's ``/proc/locks``), the process that holds its write lock; after the limit
(``JOBDECK_LOCK_WAIT_S``, at most and by default 30 s: the event log's time slack counts on it) the wait ends
with ``LedgerBusy``, one line that says what to do.

The holder is found without opening the database or its ``-shm`` file: SQLite's locks are POSIX locks, which
belong to the process, and closing any descriptor of a file this process has open drops every such lock it holds
on that file. ``/proc/locks`` names the process holding the WAL write lock (byte 120 of the ``-shm`` file).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from engine.errors import JobdeckError

NOTICE_AFTER_S = 1.0
MAX_LIMIT_S = 30.0
WAL_WRITE_LOCK_BYTE = 120  # SQLite's unix VFS: the -shm lock bytes start at 120; the write lock is the first


class LedgerBusy(JobdeckError):
    """Another process held a SQLite file's write lock for longer than this one may wait."""


def limit_s() -> float:
    """How long a writer waits for another process's lock: ``JOBDECK_LOCK_WAIT_S`` seconds, up to 30 (the default)."""
    raw = os.environ.get("JOBDECK_LOCK_WAIT_S", "").strip()
    try:
        value = float(raw) if raw else MAX_LIMIT_S
    except ValueError:
        return MAX_LIMIT_S
    return min(value, MAX_LIMIT_S) if value > 0 else MAX_LIMIT_S


class LockWait:
    """One writer's wait: ``waited(seconds)`` between tries, ``give_up()`` at the limit."""

    def __init__(self, file: Callable[[], Path | None]) -> None:
        self._file = file
        self._told = False
        self.limit_s = limit_s()

    def waited(self, seconds: float) -> None:
        if not self._told and seconds >= NOTICE_AFTER_S:
            self._told = True
            _say(f"jobdeck: waiting for the write lock on {self._describe()} (gives up after {self.limit_s:g} s)")

    def give_up(self) -> LedgerBusy:
        return LedgerBusy(
            f"gave up after {self.limit_s:g} s waiting for the write lock on {self._describe()}; try again when "
            f"that process has finished, or stop it (JOBDECK_LOCK_WAIT_S sets how long to wait)"
        )

    def _describe(self) -> str:
        try:
            path = self._file()
        except Exception:
            path = None
        if path is None:
            return "the ledger"
        pid = write_lock_holder(path)
        holder = f"held by {describe_process(pid)}" if pid is not None else "held by another process"
        return f"{path} ({holder})"


def write_lock_holder(database: Path) -> int | None:
    """The pid holding the WAL write lock of ``database``, if the system says (Linux); else None."""
    try:
        shm = os.stat(f"{database}-shm")
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    device = f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}"
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        # "1: POSIX  ADVISORY  WRITE 4242 fd:01:1234 120 120"
        if len(fields) >= 8 and fields[1] == "POSIX" and fields[5] == device:
            start, end = fields[6], fields[7]
            covers = int(start) <= WAL_WRITE_LOCK_BYTE and (end == "EOF" or int(end) >= WAL_WRITE_LOCK_BYTE)
            if covers and fields[3] == "WRITE" and int(fields[4]) != os.getpid():
                return int(fields[4])
    return None


def describe_process(pid: int) -> str:
    """``pid 4242 (python3 -c …)``: its command line where the system tells, shortened."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            command = " ".join(fh.read().replace(b"\0", b" ").decode("utf-8", "replace").split())
    except OSError:
        command = ""
    if len(command) > 60:
        command = command[:59] + "…"
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no usable stderr (a GUI without a console)
        print(line, file=sys.stderr, flush=True)
