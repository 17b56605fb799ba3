"""Delivery notes: what a job delivered (``ctx.delivered``, ``ctx.deliver``), written before the ledger hears of it.

An email the SMTP server has accepted (its 250) must not be sent again, but recording that in the ledger takes a
commit, which waits for the write lock and for whatever batch holds it: a fraction of a millisecond usually, tens
of milliseconds behind a sync. A worker killed inside that window sends the email again. A note is one ``write()``
of one line to a file the worker keeps open for appending: microseconds, and it lands in the page cache, which
outlives the process. (A power cut can lose a note that was not synced yet; the email is then sent again, which
SMTP's at-least-once allows. Syncing each note would cost what the note saves.)

An effect run through ``ctx.deliver`` is noted by the courier process (``engine.worker.courier``, with
``append_note``), which outlives a killed worker; the worker counts it as expected (``expect``) while it is asked,
so compaction never replaces the file under a note on its way.

Recovery reads the notes before it decides what a lost attempt did: an attempt with a note has succeeded, with the
result it noted (``Executor.recover``). A note is kept while its job is still running at that attempt, which is
exactly while the ledger may not know about it; the file is compacted to those at start-up, after recovery, and
while the worker runs, whenever no note is waiting for its commit.

The file lives beside a SQLite ledger (like the worker lock, so that a second data folder pointed at the same file
reads it), or in the data folder's runtime folder for a server ledger, whose workers each recover their own data
folder's notes. It holds recipients and message ids, so it is readable by its owner only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from engine.config import Paths, sqlite_file

log = logging.getLogger(__name__)

Attempt = tuple[int, int]  # (job id, attempt number)

COMPACT_BYTES = 256 * 1024  # compact once the file grows past this (about a thousand emails)


def notes_path(paths: Paths) -> Path:
    ledger = sqlite_file(paths.database_url())
    if ledger is None:
        return paths.runtime / "delivered.jsonl"
    real = ledger.resolve()
    return real.with_name(real.name + ".delivered")


class DeliveryNotes:
    """The notes file of one worker. ``running()`` lists the attempts still running in the ledger (compaction
    keeps their notes)."""

    def __init__(self, path: Path, running: Callable[[], Collection[Attempt]]) -> None:
        self.path = path
        self._running = running
        self._lock = threading.Lock()  # a note's write is never interleaved with a compaction
        self._fd: int | None = None
        self._uncommitted = 0  # notes whose ledger commit has not returned yet

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def expect(self) -> None:
        """A note may be written for an attempt now (here, or by the courier): no compaction until it settles."""
        with self._lock:
            self._uncommitted += 1

    def note(self, job_id: int, attempt: int, result: dict[str, Any] | None) -> None:
        """Write the note at once; the caller commits to the ledger next and then calls ``settled()``."""
        self.expect()
        data = note_line(job_id, attempt, result)
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, data)  # O_APPEND: one write is one whole line, even from several threads
            except OSError as exc:  # a full disk: the ledger's commit, next, is all that records the delivery
                log.warning("job %s: could not write its delivery note to %s: %s", job_id, self.path, exc)

    def settled(self) -> None:
        """The ledger's commit of a noted delivery returned (or failed: then the note stays while the job runs), or
        an expected note will not come."""
        with self._lock:
            self._uncommitted -= 1
            if self._uncommitted or self._fd is None or os.fstat(self._fd).st_size < COMPACT_BYTES:
                return  # the file's own size: the courier appends to it too
            self._compact()

    def read(self) -> dict[Attempt, dict[str, Any] | None]:
        """Every attempt noted in the file, with its result; a torn last line (a crash mid-write) is skipped."""
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return {}
        notes: dict[Attempt, dict[str, Any] | None] = {}
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                notes[(int(entry["job"]), int(entry["attempt"]))] = entry.get("result")
            except (ValueError, KeyError, TypeError):
                continue
        return notes

    def compact(self) -> None:
        """Keep only the notes of attempts still running (start-up calls this once recovery has used them)."""
        with self._lock:
            self._compact()

    def _compact(self) -> None:
        try:
            running = set(self._running())
            data = b"".join(
                note_line(job, attempt, result)
                for (job, attempt), result in self.read().items()
                if (job, attempt) in running
            )
            fresh = self.path.with_name(self.path.name + ".new")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)  # the notes kept must not be lost by the rename that replaces the old file
            finally:
                os.close(fd)
            os.replace(fresh, self.path)
        except Exception as exc:  # a full disk or an unreadable ledger: the old file stays, compaction waits
            log.warning("could not compact the delivery notes %s: %s", self.path, exc)
            return
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def note_line(job_id: int, attempt: int, result: dict[str, Any] | None) -> bytes:
    line = json.dumps({"job": job_id, "attempt": attempt, "result": result}, separators=(",", ":")) + "\n"
    return line.encode("utf-8")


def append_note(path: Path, job_id: int, attempt: int, result: dict[str, Any] | None) -> int:
    """Write one note from another process (the courier): one ``write()`` with O_APPEND; the bytes written."""
    data = note_line(job_id, attempt, result)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)
