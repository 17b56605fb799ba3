"""The one exception tree every front end maps to exit codes, inline form errors and control replies."""

from __future__ import annotations


class JobdeckError(Exception):
    """Base class: anything the engine raises on purpose."""


class ValidationError(JobdeckError):
    """Bad input: names the field and the rule; raised before anything is written."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class NotFound(ValidationError):
    """An id that is not in the ledger — a caller error, hence exit status 2."""

    def __init__(self, job_id: int) -> None:
        super().__init__("id", f"no job with id {job_id}")
        self.job_id = job_id


class InvalidTransition(ValidationError):
    """The job's current state does not allow the requested action."""

    def __init__(self, job_id: int, status: str, action: str, allowed: str) -> None:
        super().__init__("status", f"job {job_id} is {status}; {action} needs a job that is {allowed}")


class CredentialStoreUnavailable(JobdeckError):
    """No usable keyring backend — we never fall back to plaintext."""


class JobModuleError(JobdeckError):
    """A module named in JOBDECK_JOB_MODULES cannot be imported: every front end stops and says which one."""


class WorkerNotRunning(JobdeckError):
    """A control-channel request found no worker for this JOBDECK_HOME."""


class JobError(Exception):
    """Raised by a job type's run(); retryable unless it is a PermanentJobError."""


class PermanentJobError(JobError):
    """Never retried: bad credentials, missing file, recipient rejected. Fail fast and say why."""
