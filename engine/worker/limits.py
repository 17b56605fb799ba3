"""Limits the worker process sets for itself: as many open files as it may have, and a deadline for stopping."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

STOP_MARGIN_S = 3.0  # past the grace period the process ends this long (plus up to 1 s to log why) after the stop began
DARWIN_OPEN_MAX = 10240  # macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited"


def raise_open_file_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit.

    A common soft default is 1,024 descriptors while the hard limit is far higher; every connection, ledger handle
    and uploaded file takes one, so the worker takes what it is allowed. Windows has no such limit on sockets."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    targets = [hard] if hard != resource.RLIM_INFINITY else []
    if sys.platform == "darwin":
        targets.append(DARWIN_OPEN_MAX)
    for target in targets:
        if soft != resource.RLIM_INFINITY and soft >= target:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.info("open-file limit raised from %s to %s", soft, target)
        return


class StopDeadline:
    """Ends the process if stopping takes longer than the grace period plus STOP_MARGIN_S.

    A graceful stop waits for running jobs up to the grace period, then hands them back to the queue; but a thread
    stuck in a blocking call (a job in a system call, a request waiting on a locked ledger) can hold the stop, or
    the interpreter's exit, which joins every request thread, for ever. Whatever was not recorded is recovered by
    the next worker from the ledger (an expired lease), so ending the process loses nothing."""

    def __init__(self, grace_s: float, stopped: threading.Event) -> None:
        self.grace_s = grace_s
        self._stopped = stopped  # set once the graceful stop finished (then the exit code stays 0)
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()  # a signal may arrive while the main thread arms it

    def arm(self) -> None:
        """Start the clock (idempotent); safe from a signal handler."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.grace_s + STOP_MARGIN_S, self._expire)
            self._timer.name = "jobdeck-stop-deadline"
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        # Logging may block too (a handler whose pipe nobody reads): give it a moment, then end regardless.
        said = threading.Thread(target=self._say_why, name="jobdeck-stop-deadline-log", daemon=True)
        said.start()
        said.join(1.0)
        os._exit(0 if self._stopped.is_set() else 1)

    def _say_why(self) -> None:
        busy = sorted(t.name for t in threading.enumerate() if t.is_alive() and not t.name.startswith("jobdeck-stop"))
        log.error(
            "still not stopped %.0f s after the stop began (threads: %s); ending the process now%s",
            self.grace_s + STOP_MARGIN_S,
            ", ".join(busy),
            "" if self._stopped.is_set() else "; the next worker recovers its jobs from the ledger",
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):  # a handler that cannot flush must not keep us alive
                handler.flush()
