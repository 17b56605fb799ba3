"""The wire format shared by the server and every client. Versioned; clients ignore unknown keys and types."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

VERSION = 1
MAX_MESSAGE_BYTES = 1024 * 1024  # a bigger message closes the connection with 1009 (message too big)
JOB_CREATED = "job.created"
JOB_UPDATED = "job.updated"
JOB_DELETED = "job.deleted"
JOB_PROGRESS = "job.progress"
SCHEDULE_UPDATED = "schedule.updated"
WORKER_STATUS = "worker.status"
SETTINGS_CHANGED = "settings.changed"
REPLAY_DONE = "replay.done"

_KIND_TO_TYPE = {"created": JOB_CREATED, "restored": JOB_CREATED, "deleted": JOB_DELETED}  # restored: from the trash


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def job_event(stored: dict[str, Any]) -> dict[str, Any]:
    """A ledger ``job_events`` row as clients see it; ``event`` names the transition (started, failed…)."""
    if "schedule" in stored:  # a schedule's change (see engine.storage.schedules)
        return {
            "v": VERSION,
            "type": SCHEDULE_UPDATED,
            "seq": stored["seq"],
            "at": stored["at"],
            "event": stored["type"].removeprefix("schedule_"),
            "schedule": stored["schedule"],
        }
    return {
        "v": VERSION,
        "type": _KIND_TO_TYPE.get(stored["type"], JOB_UPDATED),
        "seq": stored["seq"],
        "at": stored["at"],
        "event": stored["type"],
        "job": stored["job"],
    }


def progress_event(job_id: int, progress: dict[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "type": JOB_PROGRESS, "at": now_iso(), "job_id": job_id, "progress": progress}


def status_event(status: dict[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "type": WORKER_STATUS, "at": now_iso(), "worker": status}


def settings_event(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings in effect changed (the window, `jobdeck config set` or an edit of config.json); never secrets."""
    return {"v": VERSION, "type": SETTINGS_CHANGED, "at": now_iso(), "settings": settings}


def reply(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: Any, field: str | None, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"field": field, "message": message}}


MAX_DEPTH = 32  # nesting of arrays and objects in one message; ours need five
MAX_SEQ = 2**63 - 1  # seqs are signed 64-bit integers in the ledger


class MalformedMessage(ValueError):
    """A message that is not one JSON object within the wire's bounds; the text says what is wrong."""


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """Decode one incoming message: a JSON object, at most MAX_DEPTH deep, every number finite.

    Python's decoder accepts ``NaN``, ``Infinity`` and ``1e999`` (which becomes infinity); none of them means
    anything in a request, and an infinite delay or timeout would hold a job forever, so they are refused here
    for every field at once. Nesting is bounded before any operation walks the value."""
    try:
        message = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedMessage(f"malformed message: nested deeper than {MAX_DEPTH} levels") from None
    except MalformedMessage:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"malformed message: not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise MalformedMessage("malformed message: must be a JSON object")
    if _depth(message) > MAX_DEPTH:
        raise MalformedMessage(f"malformed message: nested deeper than {MAX_DEPTH} levels")
    return message


def _no_constant(name: str) -> float:
    raise MalformedMessage(f"malformed message: {name} is not a number; every number must be finite")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedMessage(f"malformed message: {text[:40]} is out of range; every number must be finite")
    return value


def _depth(value: Any) -> int:
    """Nesting depth without recursion (the decoder already bounded it by the interpreter's stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
