"""The courier: a small child process of the worker that carries out effects a second run would repeat (an email's
SMTP exchange), so that a worker killed mid-send does not cut one in half.

SMTP cannot be asked whether a server took a message: a sender killed between its final dot and the server's 250
never learns, and at-least-once must send again. The worker is the process likely to die (it runs every job type,
holds large uploads, is what an operator or the OOM killer stops); the courier only sends. It runs each request on
a thread, writes the delivery note (``engine.worker.delivery_notes``) as soon as an effect returns, and only then
answers. When the worker dies, the courier's stdin ends: it finishes what it was sending, notes what was delivered
and exits. It holds a lock beside the notes file for its whole life (taken by the worker before the courier starts,
and handed down), and a starting worker waits for that lock
before recovery reads the notes (``wait_for_couriers``), so a worker killed while an email is on the wire repeats
nothing. What is left is SMTP's own window inside the courier: a power cut, or a kill of both processes, between the
dot and the 250.

The wire is a 4-byte length and a pickle per message, on a pipe between two processes of one user started from one
executable. A request's effect is a module-level function and its arguments, unpickled (its module imported) on
the request's own thread, so a slow import or a bad request answers that request alone.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from engine.errors import JobError
from engine.executable import COURIER, jobdeck_command
from engine.jobs.base import Effect
from engine.worker.delivery_notes import Attempt, append_note
from engine.worker.lock import try_lock

log = logging.getLogger(__name__)

WAIT_NOTICE_S = 1.0  # a start-up that waits longer for a stopped worker's courier says so
_HEADER = struct.Struct(">I")


def lock_path(notes: Path) -> Path:
    return notes.with_name(notes.name + ".courier-lock")


def wait_for_couriers(notes: Path, timeout: float) -> bool:
    """Wait until no courier of a stopped worker is still sending for this notes file (its notes are then final);
    False if one still was after ``timeout`` seconds (recovery goes on: at least once)."""
    path = lock_path(notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        return _wait_lock(fh, time.monotonic() + timeout)


def _wait_lock(fh: IO[str], deadline: float | None) -> bool:
    began = time.monotonic()
    told = False
    while True:
        try:
            try_lock(fh)
            return True
        except OSError:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                log.warning("a stopped worker's courier (%s) is still sending; recovery does not wait for it", fh.name)
                return False
            if not told and now - began >= WAIT_NOTICE_S:
                told = True
                log.warning("waiting for a stopped worker's courier to finish sending (lock %s)", fh.name)
            time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------- the wire
def _send(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any:
    """The next message, or None at the end of the stream (a torn message, from a killed writer, ends it too)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


# ---------------------------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class _Pending:
    proc: subprocess.Popen[bytes]  # the courier it was sent to (a later one may be running by its answer)
    attempt: Attempt
    future: Future[dict[str, Any] | None]


class Courier:
    """The worker's handle on its courier: started on first use, started again if it dies.

    ``noted`` reads the notes file: when the courier dies with requests outstanding, a request whose attempt it
    noted was delivered, and the others fail (retryable) so the job is tried again.
    """

    def __init__(self, notes: Path, noted: Callable[[], dict[Attempt, dict[str, Any] | None]]) -> None:
        self.notes = notes
        self._noted = noted
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)

    def call(self, job_id: int, attempt: int, effect: Effect, args: tuple[Any, ...]) -> dict[str, Any] | None:
        """Run ``effect(*args)`` in the courier and return its result (noted there first), or raise its error."""
        payload = pickle.dumps((effect, args), protocol=pickle.HIGHEST_PROTOCOL)
        future: Future[dict[str, Any] | None] = Future()
        with self._lock:
            proc = self._running()
            request = next(self._ids)
            self._pending[request] = _Pending(proc, (job_id, attempt), future)
            try:
                assert proc.stdin is not None
                _send(proc.stdin, (request, job_id, attempt, payload))  # type: ignore[arg-type]
            except (OSError, ValueError):  # it died (its pipe broken, or closed once its death was seen)
                self._pending.pop(request)
                raise JobError("the courier process stopped before it took this job; it is tried again") from None
        return future.result()

    def close(self, timeout: float = 5.0) -> None:
        """End its stdin (it finishes what it was sending) and wait for it to exit."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the courier (pid %s) did not exit within %.0f s; stopping it", proc.pid, timeout)
            proc.kill()
            proc.wait()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        lock = self._locked()
        args = [COURIER, str(self.notes)] + ([str(lock.fileno())] if lock else [])
        try:
            proc = subprocess.Popen(
                jobdeck_command(*args),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(lock.fileno(),) if lock else (),
            )
        except OSError as exc:
            raise JobError(f"could not start the courier process: {exc}; the job is tried again") from None
        finally:
            if lock:
                lock.close()  # the courier's copy holds the lock now (a flock belongs to the open file)
        self._proc = proc
        threading.Thread(target=self._read, args=(proc,), name="jobdeck-courier-replies", daemon=True).start()
        return proc

    def _locked(self) -> IO[str] | None:
        """The courier's lock, taken here and handed down, so that it is held before the courier has even started:
        a worker killed during that start must not let the next one read the notes too early. None where it cannot
        be handed down (Windows) or is still held by an earlier courier: the courier then takes it itself."""
        if sys.platform == "win32":
            return None
        fh = lock_path(self.notes).open("a+", encoding="utf-8")
        try:
            try_lock(fh)
        except OSError:
            fh.close()
            return None
        return fh

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while (reply := _receive(proc.stdout)) is not None:  # type: ignore[arg-type]
            request, ok, value = reply
            with self._lock:
                future = self._pending.pop(request).future
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        code = proc.wait()
        with self._lock:
            for pipe in (proc.stdin, proc.stdout):  # a worker outliving many couriers keeps no descriptor of theirs
                with contextlib.suppress(OSError):
                    pipe.close()  # type: ignore[union-attr]
            orphans = [self._pending.pop(r) for r, p in list(self._pending.items()) if p.proc is proc]
        if not orphans:
            return
        log.warning(
            "the courier (pid %s) stopped (exit %s) with %d request(s) unanswered", proc.pid, code, len(orphans)
        )
        noted = self._noted()
        for orphan in orphans:
            if orphan.attempt in noted:  # it delivered, noted, and died before its answer
                orphan.future.set_result(noted[orphan.attempt])
            else:
                orphan.future.set_exception(
                    JobError(f"the courier process stopped (exit {code}) before it answered; the job is tried again")
                )


# ----------------------------------------------------------------------------------------------- courier side
def serve(notes: Path, lock_fd: int | None = None) -> int:
    """The courier's main loop: requests from stdin, answers on stdout, until stdin ends; then finish and exit.
    ``lock_fd``: the courier lock, already taken by the worker that started it."""
    for name in ("SIGINT", "SIGTERM"):  # the worker decides when the courier stops: it closes stdin
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    requests = sys.stdin.buffer
    lock = _inherited(lock_fd)
    if lock is None:
        lock = lock_path(notes).open("a+", encoding="utf-8")
        _wait_lock(lock, None)  # held only by an earlier courier still finishing: its notes come first
    write = threading.Lock()
    threads: list[threading.Thread] = []
    while (message := _receive(requests)) is not None:
        thread = threading.Thread(target=_carry, args=(notes, message, replies, write), daemon=True)
        thread.start()
        threads = [t for t in threads if t.is_alive()] + [thread]
    for thread in threads:
        thread.join()
    lock.close()
    return 0


def _inherited(fd: int | None) -> IO[str] | None:
    if fd is None:
        return None
    try:
        return os.fdopen(fd, "a+", encoding="utf-8")
    except OSError:  # not an open descriptor (started by hand): take the lock by its path
        return None


def _carry(notes: Path, message: tuple[int, int, int, bytes], replies: BinaryIO, write: threading.Lock) -> None:
    request, job_id, attempt, payload = message
    try:
        effect, args = pickle.loads(payload)
        reply: tuple[int, bool, Any] = (request, True, effect(*args))
    except BaseException as exc:  # every error goes back to the job that asked
        reply = (request, False, _portable(exc))
    else:
        try:
            append_note(notes, job_id, attempt, reply[2])
        except OSError as exc:  # a full disk: the worker's commit, once it reads the answer, records the delivery
            log.warning("job %s: could not write its delivery note to %s: %s", job_id, notes, exc)
    with write, contextlib.suppress(OSError):  # the worker may be gone: the note is what counts
        _send(replies, reply)


def _portable(exc: BaseException) -> BaseException:
    """The error itself if it crosses the pipe intact, else a retryable one that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return JobError(f"{exc.__class__.__name__}: {exc}")
