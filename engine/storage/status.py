"""Job statuses and schedule kinds; str enums so they go straight into JSON and columns."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def __str__(self) -> str:
        return self.value


class ScheduleType(StrEnum):
    IMMEDIATE = "immediate"
    SCHEDULED = "scheduled"

    def __str__(self) -> str:
        return self.value


# States a worker may claim, and the ones an operator may act on (DESIGN.md, "States and transitions").
CLAIMABLE = (JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RETRYING)
CANCELABLE = CLAIMABLE  # canceled at once
# A running job is asked to stop instead: its worker cancels it at the job's next safe point (an upload's next part).
STOPPABLE = (JobStatus.RUNNING,)
# What that means, as every front end says it (the CLI, and the window through bulk reports and ``meta``).
STOP_NOTE = "asked to stop; canceled at its next safe point (an upload's next read), unless it completes first"
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELED)
WAITING = CLAIMABLE
# What a paused worker holds back: jobs that are due or will be soon (a scheduled job waits for its time instead).
WAITING_FOR_WORKER = (JobStatus.PENDING, JobStatus.RETRYING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
ALL_STATUSES = tuple(s.value for s in JobStatus)
# How every front end names a status; the enum's order is the order they list them in.
STATUS_LABELS: dict[JobStatus, str] = {s: s.value.capitalize() for s in JobStatus}

# What a recurring schedule does with runs it missed, and with a run due while the last one still waits or runs.
CATCH_UP_POLICIES = ("skip", "once", "all")
OVERLAP_POLICIES = ("skip", "allow")
