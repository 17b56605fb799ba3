"""The wire format shared by the server and every client. Versioned; clients ignore unknown keys and types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

VERSION = 1
JOB_CREATED = "job.created"
JOB_UPDATED = "job.updated"
JOB_DELETED = "job.deleted"
JOB_PROGRESS = "job.progress"
WORKER_STATUS = "worker.status"
REPLAY_DONE = "replay.done"

_KIND_TO_TYPE = {"created": JOB_CREATED, "restored": JOB_CREATED, "deleted": JOB_DELETED}  # restored: from the trash


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def job_event(stored: dict[str, Any]) -> dict[str, Any]:
    """A ledger ``job_events`` row as clients see it; ``event`` names the transition (started, failed…)."""
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


def reply(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def error_reply(request_id: Any, field: str | None, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"field": field, "message": message}}
