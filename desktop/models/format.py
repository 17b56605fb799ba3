"""Plain-text formatting of job fields for display: times in local time, sizes, durations, one-line summaries."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

STATUS_ORDER = ("pending", "scheduled", "running", "retrying", "succeeded", "failed", "canceled")
STATUS_LABELS = {s: s.capitalize() for s in STATUS_ORDER}


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def local_time(value: str | None, *, seconds: bool = True) -> str:
    when = parse_iso(value)
    if when is None:
        return ""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def job_duration(job: dict[str, Any]) -> float | None:
    start, end = parse_iso(job.get("started_at")), parse_iso(job.get("finished_at"))
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def size(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def summary(job: dict[str, Any]) -> str:
    """Recipient and subject for email, file name for uploads, else the first short parameter."""
    params = job.get("parameters") or {}
    if job.get("job_type") == "send_email":
        subject = params.get("subject", "")
        return f"{params.get('recipient', '')} — {subject}" if subject else str(params.get("recipient", ""))
    if "path" in params:
        return os.path.basename(str(params["path"]).replace("\\", "/"))
    for value in params.values():
        if isinstance(value, str) and value:
            return value.splitlines()[0][:120]
    return ""


def outcome(job: dict[str, Any]) -> str:
    """The result or error, on one line."""
    if job.get("error"):
        return str(job["error"]).splitlines()[0]
    result = job.get("result")
    if not result:
        return ""
    if isinstance(result, dict):
        if result.get("skipped"):
            return f"skipped: {result['skipped']}"
        if result.get("file_url"):
            return str(result["file_url"])
        if result.get("recipients") is not None:
            return f"sent to {len(result['recipients'])} recipient(s)"
    return json.dumps(result, ensure_ascii=False)[:200]


def when(job: dict[str, Any]) -> str:
    """Scheduled time, or the next retry for a retrying job."""
    if job.get("status") == "retrying" and job.get("next_attempt_at"):
        return "retry " + local_time(job["next_attempt_at"], seconds=False)
    if job.get("status") == "scheduled" or (job.get("scheduled_time") and job.get("status") == "pending"):
        return local_time(job.get("scheduled_time"), seconds=False)
    return ""


def matches_search(job: dict[str, Any], search: str) -> bool:
    """The client-side twin of the ledger's search (parameters, result and error, case-insensitive)."""
    needle = search.lower()
    for field in ("parameters", "result", "error"):
        value = job.get(field)
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if needle in text.lower():
            return True
    return False


def progress_compact(progress: dict[str, Any]) -> str:
    """What fits in a table cell: "42 % · 12.3 MB/s · 8 s left" (the tooltip has the full detail)."""
    return progress_compact_variants(progress)[0]


def progress_compact_variants(progress: dict[str, Any]) -> list[str]:
    """The compact progress text, then shorter forms for narrower cells: without the rate, then the share alone."""
    done, total = progress.get("done") or 0, progress.get("total")
    share = f"{100 * done / total:.0f} %" if total else size(done)
    rate = f"{size(progress['rate'])}/s" if progress.get("rate") else ""
    left = f"{duration_short(progress['eta_s'])} left" if progress.get("eta_s") is not None else ""
    variants = [" · ".join(p for p in (share, rate, left) if p), " · ".join(p for p in (share, left) if p), share]
    return list(dict.fromkeys(variants))


def progress_detail(progress: dict[str, Any]) -> str:
    """The full upload progress for a tooltip: bytes done of total, percentage, rate and time left."""
    done, total = progress.get("done") or 0, progress.get("total")
    head = f"Uploaded {size(done)} of {size(total)} ({100 * done / total:.1f} %)" if total else f"Uploaded {size(done)}"
    lines = [head]
    if progress.get("rate"):
        lines.append(f"Rate {size(progress['rate'])}/s")
    if progress.get("eta_s") is not None:
        lines.append(f"About {duration(progress['eta_s'])} left")
    return "\n".join(lines)


def duration_short(seconds: float) -> str:
    """Whole seconds, minutes or hours: enough precision for an estimate."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def outcome_detail(job: dict[str, Any]) -> str:
    """The whole result or error, for a tooltip (long ones are cut at a few thousand characters)."""
    if job.get("error"):
        text = str(job["error"])
    elif job.get("result"):
        result = job["result"]
        if isinstance(result, dict):
            text = "\n".join(f"{key}: {_plain(value)}" for key, value in result.items())
        else:
            text = _plain(result)
    else:
        return ""
    return text if len(text) <= 4000 else text[:4000] + "…"


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) or "–"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


ACRONYMS = {"html": "HTML", "url": "URL", "id": "ID", "smtp": "SMTP", "s3": "S3", "tls": "TLS", "aws": "AWS"}


def field_label(name: str, title: str | None = None) -> str:
    """A form label in sentence case that keeps acronyms: ``html_body`` → "HTML body".

    Schemas generated by pydantic title-case the field name ("Html Body"); such a title says nothing the name did
    not, so it is rebuilt from the name. A title written by hand is kept as it is.
    """
    if title and title != name.replace("_", " ").title():
        return title
    words = [ACRONYMS.get(w.lower(), w.lower()) for w in name.split("_") if w]
    if not words:
        return title or name
    first = words[0]
    words[0] = first if first in ACRONYMS.values() else first.capitalize()
    return " ".join(words)
