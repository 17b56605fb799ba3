"""A job in words, for the detail panel: its state as a sentence, its parameters and result as labelled values (no
bookkeeping fields), and its attempts as a timeline built from the history the ledger records. No Qt here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from desktop.models import format as fmt

# Filled in by the engine at submission to recognise the file and the objects a job writes: nothing to act on.
HIDDEN_PARAMETERS = frozenset({"mtime_ns", "job_tag"})
CONFLICT_TEXT = {"overwrite": "replace it", "skip": "skip this upload", "rename": "upload under a new name"}
CANCELING = "Canceling"  # a running job an operator asked to stop, until its worker ends it
EMAIL_LABELS = {"recipient": "To", "subject": "Subject", "body": "Body", "html_body": "HTML body"}


@dataclass(frozen=True)
class Step:
    """One line of the timeline: when, what, and why (an error), with its kind for the glyph and colour."""

    at: str | None  # ISO time, or None for a planned step with no fixed time
    title: str
    detail: str = ""
    kind: str = "info"  # info | running | ok | error | waiting
    window: str = ""  # for a planned step with no fixed time: the span it may fall in, "22:33–22:43"


def canceling(job: dict[str, Any]) -> bool:
    """Running, and asked to stop: the job's worker has not ended it yet."""
    return job.get("status") == "running" and bool(job.get("cancel_requested_at"))


def state_line(job: dict[str, Any], now: datetime | None = None) -> str:
    """The job's state as a sentence that ticks: "Retry in 4 min 12 s", "Running for 12 s", "Failed 3 min ago"."""
    now = now or datetime.now(UTC)
    status = job.get("status")
    if status == "retrying" and job.get("next_attempt_at"):
        wait = _seconds_until(job["next_attempt_at"], now)
        return f"Retry in {fmt.countdown(wait)}" if wait > 0 else "Retry due now"
    if status == "scheduled" and job.get("scheduled_time"):
        wait = _seconds_until(job["scheduled_time"], now)
        return f"Starts in {fmt.countdown(wait)}" if wait > 0 else "Starting"
    if status == "running" and job.get("started_at"):
        running = f"Running for {fmt.countdown(-_seconds_until(job['started_at'], now))}"
        return f"{CANCELING}: {running[0].lower()}{running[1:]}" if canceling(job) else running
    if status == "pending":
        return "Waiting for the worker to start it"
    finished = fmt.relative(job.get("finished_at"), now)
    took = fmt.job_duration(job)
    if status == "succeeded":
        return f"Succeeded {finished}" + (f", took {fmt.duration(took)}" if took is not None else "")
    if status == "failed":
        attempts = int(job.get("attempts") or 0)
        return f"Failed {finished} after {attempts} attempt{'s' if attempts != 1 else ''}"
    if status == "canceled":
        return f"Canceled {finished}".strip()
    return str(status or "")


def overview_rows(job: dict[str, Any], now: datetime | None = None) -> list[tuple[str, str]]:
    """When it was made (and is planned for), how long it took, priority and attempts; the clock times of each step
    are in the timeline."""
    rows = [("Created", fmt.relative(job.get("created_at"), now))]
    if job.get("status") == "scheduled" and job.get("scheduled_time"):
        rows.append(("Starts", f"{fmt.relative(job['scheduled_time'], now)} ({fmt.local_time(job['scheduled_time'])})"))
    took = fmt.job_duration(job)
    if took is not None:
        rows.append(("Took", fmt.duration(took)))
    rows.append(("Priority", str(job.get("priority", ""))))
    allowed = int(job.get("max_retries") or 0) + 1
    rows.append(("Attempts", f"{job.get('attempts', 0)} of {allowed}"))
    return rows


def parameter_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    """The parameters as an operator reads them: the upload's file, size and destination; the email's To and
    Subject; anything else by its field name in words."""
    params = {k: v for k, v in (job.get("parameters") or {}).items() if k not in HIDDEN_PARAMETERS}
    rows: list[tuple[str, str]] = []
    if job.get("job_type") == "upload_file":
        rows.append(("File", str(params.pop("path", ""))))
        if params.get("size") is not None:
            rows.append(("Size", fmt.size(params.pop("size"))))
        bucket, key = params.pop("bucket", None), params.pop("key", None)
        if bucket:
            rows.append(("Destination", f"s3://{bucket}/{key or ''}"))
        conflict = params.pop("conflict", None)
        if conflict:
            rows.append(("If the key exists", CONFLICT_TEXT.get(conflict, str(conflict))))
        in_place = params.pop("in_place", False)
        rows.append(("Sends", "the file itself, as it is when sent" if in_place
                     else "a copy taken when the job was created"))  # fmt: skip
    elif job.get("job_type") == "send_email":
        for key, label in EMAIL_LABELS.items():
            if params.get(key):
                rows.append((label, str(params.pop(key))))
    for key, value in params.items():
        text = human_value(key, value)
        if text:
            rows.append((fmt.field_label(key), text))
    return rows


def result_rows(job: dict[str, Any]) -> list[tuple[str, str]]:
    """What the job produced: the upload's link, size, parts and checksum; the email's recipients."""
    result = job.get("result")
    if not result:
        return []
    if not isinstance(result, dict):
        return [("Result", human_value("result", result))]
    result = dict(result)
    rows: list[tuple[str, str]] = []
    if result.get("skipped"):
        rows.append(("Skipped", f"the key {result['skipped']}"))
    if result.get("file_url"):
        rows.append(("Link", str(result.pop("file_url"))))
    if "bucket" in result and "key" in result:
        rows.append(("Stored as", f"s3://{result.pop('bucket')}/{result.pop('key')}"))
    if result.get("size") is not None:
        rows.append(("Size", fmt.size(result.pop("size"))))
    if "multipart" in result:
        parts = int(result.get("parts") or 1)
        sent = "in one request" if not result.get("multipart") else f"in {parts:,} parts"
        if result.get("found_complete"):
            sent = "by an earlier attempt (found complete)"
        rows.append(("Sent", sent))
    if result.get("checksum"):
        rows.append(("Checksum", f"{result.get('checksum_algorithm', '')} {result['checksum']}".strip()))
    if result.get("version_id"):
        rows.append(("Version", str(result["version_id"])))
    if "recipients" in result:
        rows.append(("Delivered to", ", ".join(result["recipients"]) or "nobody"))
    if result.get("refused"):
        rows.append(("Refused", ", ".join(result["refused"])))
    if result.get("message_id"):
        rows.append(("Message ID", str(result["message_id"])))
    shown = {"skipped", "size", "multipart", "parts", "resumed_parts", "found_complete", "checksum",
             "checksum_algorithm", "version_id", "recipients", "refused", "message_id", "etag",
             "bytes_sent_this_attempt", "file_url", "bucket", "key"}  # fmt: skip
    for key, value in result.items():
        if key not in shown and (text := human_value(key, value)):
            rows.append((fmt.field_label(key), text))
    return rows


def human_value(key: str, value: Any) -> str:
    """One value in words: yes/no, sizes for byte counts, durations for seconds, lists joined; empty for none."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and (key == "size" or key.endswith("_bytes")):
        return fmt.size(value)
    if isinstance(value, int | float) and key.endswith("_s"):
        return fmt.duration(value)
    if isinstance(value, list):
        return ", ".join(human_value(key, v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return f"{value:,}" if isinstance(value, int) else str(value)


def timeline(job: dict[str, Any]) -> list[Step]:
    """The attempts from the job's recorded history, each with how it ended and why, then the planned retries."""
    steps: list[Step] = []
    started_at: str | None = None  # the start of the attempt under way, until it ends
    history = job.get("history") or []
    for n, item in enumerate(history):
        kind, at, attempt = item.get("type"), item.get("at"), item.get("attempts")
        error = str(item.get("error") or "")
        after = _after(started_at, at)
        last = n == len(history) - 1
        if kind == "created":
            steps.append(Step(at, "Created"))
        elif kind == "started":
            started_at = at
            running = last and job.get("status") == "running"
            steps.append(Step(at, f"Attempt {attempt} started", kind="running" if running else "info"))
        elif kind == "succeeded":
            steps.append(Step(at, f"Attempt {attempt} succeeded{after}", kind="ok"))
        elif kind == "retry_scheduled":
            steps.append(Step(at, f"Attempt {attempt} failed{after}; retry planned", error, "error"))
        elif kind == "failed":
            steps.append(Step(at, f"Attempt {attempt} failed{after}; no retry", error, "error"))
        elif kind == "lease_expired":
            steps.append(Step(at, f"Attempt {attempt}: the worker was lost{after}", error, "error"))
        elif kind == "released":
            steps.append(Step(at, f"Attempt {attempt} stopped: the worker shut down (not counted)"))
        elif kind == "canceled" and started_at is not None:  # a running job an operator asked to stop
            steps.append(Step(at, f"Attempt {attempt} canceled{after}"))
        else:
            steps.append(Step(at, _OPERATOR_EVENTS.get(str(kind), str(kind).replace("_", " ").capitalize())))
        if kind in _ATTEMPT_ENDS:
            started_at = None
    day = fmt.local_time(job.get("created_at"))[:10]
    for planned in job.get("retry_schedule") or []:
        if planned.get("at"):
            steps.append(Step(planned["at"], f"Attempt {planned.get('attempt')} planned", kind="waiting"))
        else:
            window = f"{_clock(planned.get('earliest'), day)}–{_clock(planned.get('latest'), day)}"
            steps.append(Step(None, f"Attempt {planned.get('attempt')} if needed", kind="waiting", window=window))
    return steps


def _clock(value: str | None, day: str) -> str:
    """Hours and minutes, with the date only when it is not the job's creation day."""
    text = fmt.local_time(value, seconds=False)
    return text[11:] if text[:10] == day else text


_ATTEMPT_ENDS = frozenset({"succeeded", "retry_scheduled", "failed", "lease_expired", "released", "canceled"})
_OPERATOR_EVENTS = {
    "retried": "Retried (attempts start again)",
    "cancel_requested": "Cancel requested: the run stops at its next safe point",
    "canceled": "Canceled",
    "run_now": "Run now",
    "deleted": "Moved to the trash",
    "restored": "Restored from the trash",
}


def _after(start: str | None, end: str | None) -> str:
    began, ended = fmt.parse_iso(start), fmt.parse_iso(end)
    if began is None or ended is None:
        return ""
    return f" after {fmt.duration(max(0.0, (ended - began).total_seconds()))}"


def _seconds_until(value: str, now: datetime) -> float:
    when = fmt.parse_iso(value)
    return 0.0 if when is None else (when - now).total_seconds()
