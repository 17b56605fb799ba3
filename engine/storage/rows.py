"""How ledger rows become the public job JSON that the CLI prints, events carry and the GUI shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import Row

# Fields of the job JSON that the CLI prints, events carry and the GUI shows, in that order.
JOB_FIELDS = (
    "id", "job_type", "status", "priority", "parameters", "attempts", "max_retries", "schedule_type",
    "scheduled_time", "next_attempt_at", "created_at", "started_at", "finished_at", "result", "error",
    "schedule_id", "planned_at", "cancel_requested_at",
)  # fmt: skip
_TIME_FIELDS = (
    "scheduled_time", "next_attempt_at", "created_at", "started_at", "finished_at", "planned_at", "cancel_requested_at",
)  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def job_to_dict(row: Row[Any] | Any) -> dict[str, Any]:
    """The public job JSON: times are ISO 8601 with a UTC offset."""
    data = row._mapping if isinstance(row, Row) else row
    out = {field: data[field] for field in JOB_FIELDS}
    for field in _TIME_FIELDS:
        out[field] = iso(out[field])
    return out
