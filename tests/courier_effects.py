"""Effects for tests/test_courier.py: module-level, so that the courier process can import them by name."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from engine.errors import PermanentJobError
from engine.worker.delivery_notes import append_note


def where(tag: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "tag": tag}


def refuse(reason: str) -> dict[str, Any]:
    raise PermanentJobError(reason)


def slow(seconds: float) -> dict[str, Any]:
    time.sleep(seconds)
    return {"slept": seconds}


def die() -> dict[str, Any]:
    os._exit(9)


def note_and_die(notes: str, job_id: int, attempt: int) -> dict[str, Any]:
    """Delivered and noted, then gone before the answer (what a kill right after the note leaves)."""
    append_note(Path(notes), job_id, attempt, {"noted": True})
    os._exit(9)
