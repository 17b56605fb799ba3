"""Logging for the worker and the GUI: a rotating file under JOBDECK_HOME/logs, and one line per record on stderr.

The file keeps every traceback (what a bug report needs); the console, which a user reads, gets each record as one
line, an exception told by ``engine.failures`` when the environment caused it. Uncaught exceptions in any thread
are logged the same way instead of printed.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
import threading
import time
from types import TracebackType

from engine.config import Paths
from engine.credentials.redact import redact_seen
from engine.failures import describe, first_line

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REPORT_EVERY_S = 60.0  # how often a log file that cannot be written is mentioned on the console

log = logging.getLogger(__name__)


class OneLineFormatter(logging.Formatter):
    """A record in one line: its message's first line, then the exception's own first line (no traceback); with
    every secret this process has used scrubbed, as in the log file (``RedactingFormatter``)."""

    def __init__(self, paths: Paths | None = None) -> None:
        super().__init__(FORMAT)
        self._paths = paths

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        lines = line.splitlines() or [""]
        line = lines[0] + (" (more in the log file)" if len(lines) > 1 else "")
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            line += f": {describe(exc, self._paths) or f'{type(exc).__name__}: {first_line(exc)}'}"
        return redact_seen(line)


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file; when it cannot be written (a full disk), the console says so once a minute, in one line,
    instead of logging's own traceback after every record."""

    _reported_at = -REPORT_EVERY_S

    def handleError(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_S:
            return
        self._reported_at = now
        exc = sys.exc_info()[1]
        why = (describe(exc) or first_line(exc)) if exc is not None else "unknown error"
        _to_console(f"jobdeck: cannot write the log file {self.baseFilename} ({why}); logging to the console only")


class _Console(logging.StreamHandler):
    """stderr; if even that fails (its file is on a full disk, or closed), there is nowhere left to say so."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _to_console(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


class RedactingFormatter(logging.Formatter):
    """Scrubs every secret this process has used from the whole record, traceback included: a library's
    exception text can quote a URL or a server reply that carries one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_seen(super().format(record))


def configure_logging(paths: Paths, name: str, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_jobdeck", False) for h in root.handlers):
        return
    file_handler = _LogFile(paths.logs / f"{name}.log", maxBytes=5 * 1024**2, backupCount=3, encoding="utf-8")
    file_handler.setFormatter(RedactingFormatter(FORMAT))
    console = _Console(sys.stderr)
    console.setFormatter(OneLineFormatter(paths))
    handlers: tuple[logging.Handler, ...] = (file_handler, console)
    for handler in handlers:
        handler._jobdeck = True  # type: ignore[attr-defined]  # marks ours, so a second call adds none
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("huey", "websockets", "botocore", "boto3", "urllib3", "s3transfer", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    threading.excepthook = _thread_died


def _thread_died(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception goes to the log (traceback in the file, one line on the console)."""
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None] = (
        args.exc_type,
        args.exc_value,
        args.exc_traceback,
    )
    log.error("uncaught exception in %s", name, exc_info=exc_info)
