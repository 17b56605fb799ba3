"""Plain-text formatting of job fields for display: times in local time, sizes, durations, one-line summaries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


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
    """Bytes in binary units, named as such (1 KiB = 1,024 B): "512 B", "1.5 KiB", "12.3 MiB", "240 GiB"."""
    if n is None:
        return ""
    value = float(n)
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1023.5 or unit == "TiB":  # 1,023.9 KiB reads "1.0 MiB", not "1024 KiB"
            break
    return f"{value:.1f} {unit}" if abs(value) < 99.95 else f"{value:.0f} {unit}"


def summary_order(job: dict[str, Any]) -> str:
    """What the ledger sorts the Summary column by (``engine.storage.reads.SUMMARY_SORT``), for the built-in types:
    a view compares it to see whether a changed job moved."""
    params = job.get("parameters") or {}
    if job.get("job_type") == "send_email":
        text = f"{params.get('recipient') or ''} — {params.get('subject') or ''}"
    elif job.get("job_type") == "upload_file":
        text = str(params.get("path") or "").replace("\\", "/").rsplit("/", 1)[-1]
    else:
        text = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    return text.lower()[:100]


def outcome(job: dict[str, Any], link: str | None = None) -> str:
    """The result or error, on one line; ``link``: the result's link to what the job made (``EngineMeta.link``)."""
    if job.get("error"):
        return str(job["error"]).splitlines()[0]
    result = job.get("result")
    if not result:
        return ""
    if isinstance(result, dict):
        if result.get("skipped"):
            return f"skipped: {result['skipped']}"
        if link:
            return link
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


def progress_compact(progress: dict[str, Any]) -> str:
    """What fits in a table cell: "42 % · 12.3 of 29.3 MiB · 4.1 MiB/s · 8 s left" (the tooltip has the rest)."""
    return progress_compact_variants(progress)[0]


def _amount(progress: dict[str, Any], *, short: bool = False) -> str:
    """Done of total in the progress' unit: "12.3 MiB of 29.3 MiB" (``short``: "12.3 of 29.3 MiB"), or "3 of 10"."""
    done, total = progress.get("done") or 0, progress.get("total")
    if progress.get("unit") != "bytes":
        return f"{done:,} of {total:,}" if total else f"{done:,}"
    if not total:
        return size(done)
    done_text, total_text = size(done), size(total)
    done_number, _, done_unit = done_text.partition(" ")
    if short and done_unit == total_text.partition(" ")[2]:
        return f"{done_number} of {total_text}"
    return f"{done_text} of {total_text}"


def progress_rate(progress: dict[str, Any]) -> str:
    """ "4.1 MiB/s" (bytes) or "2.5/s"; empty while the worker has no rate yet."""
    rate = progress.get("rate")
    if not rate:
        return ""
    return f"{size(rate)}/s" if progress.get("unit") == "bytes" else f"{rate:,.1f}/s"


def progress_left(progress: dict[str, Any]) -> str:
    """ "8 s left"; empty when the worker cannot tell."""
    eta = progress.get("eta_s")
    return f"{duration_short(eta)} left" if eta is not None else ""


def progress_share(progress: dict[str, Any]) -> float | None:
    """Done as a fraction of the total (0–1), or None when the total is unknown."""
    total = progress.get("total")
    return min(1.0, max(0.0, (progress.get("done") or 0) / total)) if total else None


def progress_compact_variants(progress: dict[str, Any]) -> list[str]:
    """The progress text, then shorter forms for narrower cells: without the amount, without the rate, the share."""
    share_of = progress_share(progress)
    share = f"{100 * share_of:.0f} %" if share_of is not None else _amount(progress)
    amount = _amount(progress, short=True) if share_of is not None else ""
    rate, left = progress_rate(progress), progress_left(progress)
    variants = [
        " · ".join(p for p in (share, amount, rate, left) if p),
        " · ".join(p for p in (share, rate, left) if p),
        " · ".join(p for p in (share, left) if p),
        share,
    ]
    return list(dict.fromkeys(variants))


def progress_detail(progress: dict[str, Any]) -> str:
    """The whole progress, one fact a line: done of total with the share, the rate and the time left."""
    share = progress_share(progress)
    verb = "Uploaded" if progress.get("unit") == "bytes" else "Done"
    head = f"{verb} {_amount(progress)}" + (f" ({100 * share:.1f} %)" if share is not None else "")
    lines = [head]
    if rate := progress_rate(progress):
        lines.append(f"Rate {rate}")
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


def countdown(seconds: float) -> str:
    """A wait to the second, for a line that ticks: "12 s", "4 min 12 s", "2 h 05 min"."""
    seconds = max(0, int(seconds + 0.999))  # never "0 s" while some time is left
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def relative(value: str | None, now: datetime | None = None) -> str:
    """A time as people say it: "just now", "4 min ago", "in 2 h 5 min", "yesterday 14:02"; a date when far."""
    when = parse_iso(value)
    if when is None:
        return ""
    now = now or datetime.now(UTC)
    delta = (when - now).total_seconds()
    ahead, span = delta > 0, abs(delta)
    if span < 5:
        return "just now"
    if span < 60 and not ahead:  # no seconds in the past: the text would change every second
        return "under a minute ago"
    if span < 3600:
        text = countdown(span) if span < 60 else f"{int(span // 60)} min"
    elif span < 6 * 3600:
        hours, minutes = divmod(int(span // 60), 60)
        text = f"{hours} h {minutes} min" if minutes else f"{hours} h"
    else:
        local, today = when.astimezone(), now.astimezone().date()
        days = (local.date() - today).days
        day = {0: "today", -1: "yesterday", 1: "tomorrow"}.get(days, local.strftime("%Y-%m-%d"))
        return f"{day} {local.strftime('%H:%M')}"
    return f"in {text}" if ahead else f"{text} ago"


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
