"""Input checks shared by every front end (priority, retries, times, ids, statuses, limits).

A module of their own, needing only the standard library: a command that goes through a running worker checks
what it must read in its own process (a time without an offset is the user's local time, not the worker's) with
the same functions, and so the same messages, as ``Operations`` uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.errors import ValidationError
from engine.storage.status import ALL_STATUSES

MAX_DELAY_S = 86_400  # a delay or timeout in seconds: longer than a day is a mistake (and 1e308 never ends)


def parse_int(field: str, value: Any, low: int, high: int, rule: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, f"must be {rule}; got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValidationError(field, f"must be {rule}; got {value!r}") from None
    if not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"must be {rule}; got {value!r}")
    return value


def parse_seconds(field: str, value: Any) -> float:
    """A positive, finite number of seconds, at most a day."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_DELAY_S:
        raise ValidationError(field, f"must be a number of seconds above 0 and at most {MAX_DELAY_S}; got {value!r}")
    return float(value)


def parse_priority(value: Any) -> int:
    return parse_int("priority", value, 0, 9, "an integer from 0 to 9 (higher runs first)")


def parse_max_retries(value: Any) -> int:
    return parse_int("max_retries", value, 0, 100, "an integer from 0 to 100")


def parse_time(field: str, value: Any, *, future: bool) -> datetime:
    """ISO 8601; a time without an offset is local time. Stored in UTC."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "T", 1)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(
                field, f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T09:30 or 2026-12-01T09:30+01:00)"
            ) from None
    else:
        raise ValidationError(field, "is required: an ISO 8601 time such as 2026-12-01T09:30")
    if when.tzinfo is None:
        when = when.astimezone()  # naive means the user's local time
    when = when.astimezone(UTC)
    if future and when <= datetime.now(UTC):
        raise ValidationError(field, f"{when.isoformat()} is in the past; give a time in the future")
    return when


def parse_statuses(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    statuses = [s.strip() for item in items for s in str(item).split(",") if s.strip()]
    bad = [s for s in statuses if s not in ALL_STATUSES]
    if bad:
        raise ValidationError("status", f"unknown status {bad[0]!r}; allowed: {', '.join(ALL_STATUSES)}")
    return statuses


def parse_id(value: Any) -> int:
    return parse_int("id", value, 1, 2**63 - 1, "a positive job id")
