"""The statistics' time series: jobs that succeeded and failed per bucket over a window of time (1 h to 30 d)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.errors import ValidationError

# window → (its span, one bucket) in seconds: about a hundred bars whatever the span.
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86_400, 900),
    "7d": (7 * 86_400, 3600),
    "30d": (30 * 86_400, 6 * 3600),
}


def parse_window(value: Any) -> tuple[int, int]:
    if not isinstance(value, str) or value.strip() not in WINDOWS:
        raise ValidationError("window", f"must be one of {', '.join(WINDOWS)}; got {str(value)[:40]!r}")
    return WINDOWS[value.strip()]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(span_s: int, bucket_s: int, now: datetime) -> datetime:
    """The first bucket's start: buckets are whole multiples of ``bucket_s`` since the epoch and the last one holds
    ``now``, so a bar keeps its place as time moves on and new bars appear on the right."""
    first = int((now - EPOCH).total_seconds() // bucket_s) + 1 - span_s // bucket_s
    return EPOCH + timedelta(seconds=first * bucket_s)


def buckets(counted: list[tuple[str, int, int]], span_s: int, bucket_s: int, now: datetime) -> dict[str, Any]:
    """The window's series from (kind, bucket since the epoch, count) rows (``Ledger.finished_per_bucket``)."""
    start = window_start(span_s, bucket_s, now)
    first = int((start - EPOCH).total_seconds()) // bucket_s
    count = span_s // bucket_s
    succeeded, failed = [0] * count, [0] * count
    for kind, bucket, n in counted:
        if 0 <= bucket - first < count:
            (succeeded if kind == "succeeded" else failed)[bucket - first] += n
    return {"start": start.isoformat(), "bucket_s": bucket_s, "buckets": count, "succeeded": succeeded,
            "failed": failed}  # fmt: skip
