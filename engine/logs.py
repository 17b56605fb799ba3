"""Logging set-up for the worker and the GUI: a rotating file under JOBDECK_HOME/logs plus stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from engine.config import Paths
from engine.credentials.redact import redact_seen

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Scrubs every secret this process has used from the whole record, traceback included: a library's
    exception text can quote a URL or a server reply that carries one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_seen(super().format(record))


def configure_logging(paths: Paths, name: str, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_jobdeck", False) for h in root.handlers):
        return
    file_handler = logging.handlers.RotatingFileHandler(
        paths.logs / f"{name}.log", maxBytes=5 * 1024**2, backupCount=3, encoding="utf-8"
    )
    stream = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stream):
        handler.setFormatter(RedactingFormatter(FORMAT))
        handler._jobdeck = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("huey", "websockets", "botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
