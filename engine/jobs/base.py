"""What a job type is: a name, a label, a pydantic parameter model and ``run(ctx, params)``.

Types may also stage input at submission (``prepare``) and release what they hold when a job ends or is
deleted (``cleanup``). ``ctx`` gives the run what it may touch: progress, credentials, settings, a temp folder,
and a checkpoint for resumable work.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from engine.config import Settings
from engine.credentials.store import Credentials


class Params(BaseModel):
    """Base for parameter models: unknown parameters are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Effect = Callable[..., dict[str, Any] | None]  # what ``JobContext.deliver`` runs

# Inside ``JobType`` the name ``Params`` is the class attribute (the type's own model), so its methods
# annotate with this alias of the base model.
AnyParams = Params


@dataclass
class JobContext:
    job_id: int
    attempt: int
    settings: Settings
    credentials: Credentials
    temp_root: Path
    staged_path: Path | None = None
    checkpoint: dict[str, Any] | None = None
    created_at: str = ""  # the job's creation time as the ledger recorded it: with ``job_id``, names this job alone
    # Set when the run should stop at its next safe point (an upload checks between reads): a shutdown past its
    # grace period, or an operator's cancel, which also sets ``cancel_requested``. A run that stops raises.
    stop_requested: threading.Event = field(default_factory=threading.Event)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    _report: Callable[[int, dict[str, Any]], None] | None = None
    _save_checkpoint: Callable[[int, dict[str, Any] | None], None] | None = None
    _delivered: Callable[[dict[str, Any] | None], None] | None = None
    _courier: Callable[[Effect, tuple[Any, ...]], dict[str, Any] | None] | None = None
    made_temp_dir: bool = field(default=False, init=False)

    @property
    def temp_dir(self) -> Path:
        """A private scratch folder, made on first use (most jobs never need one) and removed after the run."""
        path = self._temp_path()
        path.mkdir(parents=True, exist_ok=True)
        self.made_temp_dir = True
        return path

    def remove_temp_dir(self) -> None:
        if self.made_temp_dir:
            shutil.rmtree(self._temp_path(), ignore_errors=True)

    def _temp_path(self) -> Path:
        return self.temp_root / f"job-{self.job_id}"

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Live progress (not stored); the event server coalesces it to 10 a second per job."""
        if self._report is not None:
            self._report(self.job_id, {"done": done, "total": total, **extra})

    def delivered(self, result: dict[str, Any] | None) -> None:
        """The job's effect has happened and cannot be taken back (the SMTP server answered 250): record its success
        now, before any teardown (QUIT, closing sockets), so that a crash from here on does not repeat the effect.

        ``run`` then returns (its return value and any later error are ignored: the job has succeeded). Without a
        ledger behind the context (a unit test), this does nothing and ``run``'s return value counts.
        """
        if self._delivered is not None:
            self._delivered(result)

    def deliver(self, effect: Effect, *args: Any) -> dict[str, Any] | None:
        """Carry out an effect a second run would repeat (an email's SMTP exchange) and record it as delivered.

        ``effect(*args)`` runs in the worker's courier process, which outlives a crash of the worker, and its
        return value is the job's result (see ``engine.worker.courier``): ``effect`` must be a module-level function
        and ``args`` picklable. Without a courier (a unit test) it runs here and is reported through ``delivered``.
        """
        if self._courier is not None:
            return self._courier(effect, args)
        result = effect(*args)
        self.delivered(result)
        return result

    def save_checkpoint(self, data: dict[str, Any] | None) -> None:
        """Persist resumable state so the next attempt, even after a crash, continues from here."""
        self.checkpoint = data
        if self._save_checkpoint is not None:
            self._save_checkpoint(self.job_id, data)


@dataclass(frozen=True)
class CleanupEnv:
    """What cleanup may use: settings and credentials (e.g. to abort a multipart upload)."""

    settings: Settings
    credentials: Credentials


@dataclass(frozen=True)
class Prepared:
    """The outcome of submission-time preparation: parameters to store and a staged file the job owns."""

    parameters: dict[str, Any]
    staged_path: Path | None = None


class JobType:
    """Subclass, set the class attributes, implement run(); register with ``@register``."""

    name: ClassVar[str]
    label: ClassVar[str]
    short_label: ClassVar[str] = ""  # a table's Type column ("Email"); empty: the label
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]]
    # The one-line summary of a job: these parameters, in order, the empty ones left out, joined by " — "; a
    # parameter whose schema format is "file-path" shows its file name only. Front ends build the same line from
    # ``describe()`` (the `meta` request) instead of keeping a rule per type. Empty: the first parameter.
    summary_fields: ClassVar[tuple[str, ...]] = ()
    # The field of a job's result that links to what it made (an uploaded object's URL), if any.
    link_field: ClassVar[str | None] = None
    # Per-type retry policy; None falls back to the settings.
    retry_base_s: ClassVar[float | None] = None
    retry_cap_s: ClassVar[float | None] = None

    def prepare(self, params: AnyParams, settings: Settings, spool: Path) -> Prepared:
        """Submission-time work after validation (e.g. snapshot a file). Raise ValidationError to refuse.

        A schedule's run is submitted at its planned time, so this runs then, for each run."""
        return Prepared(params.model_dump(mode="json", exclude_none=True))

    def check_template(self, params: AnyParams, settings: Settings, spool: Path) -> dict[str, Any] | None:
        """A schedule's template, checked when the schedule is saved: the parameters to store, or None when this
        type cannot be scheduled (it overrides ``prepare`` and did not say how to check a template without it).

        Types that prepare nothing store their validated parameters; each run is then the template as is."""
        if type(self).prepare is not JobType.prepare:
            return None
        return params.model_dump(mode="json", exclude_none=True)

    def run(self, ctx: JobContext, params: AnyParams) -> dict[str, Any] | None:
        raise NotImplementedError

    def cleanup(
        self,
        job: dict[str, Any],
        staged_path: Path | None,
        env: CleanupEnv,
        reason: str,
        *,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        """Release what the job holds once it ``succeeded``, ``failed`` for good, was ``canceled`` or ``deleted``.

        A failed job keeps its staged input so that a retry can run it again. ``checkpoint`` is the job's last saved
        resumable state, so a type can release remote resources it names (e.g. abort a multipart upload).
        """
        if staged_path is not None and reason != "failed":
            remove_staged(staged_path)

    def completed_result(
        self,
        job: dict[str, Any],
        staged_path: Path | None,
        env: CleanupEnv,
        *,
        checkpoint: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Whether an attempt that lost its worker had already done the job's work; asked when a lease lapses.

        Return the job's result if the work is known to be complete (e.g. the upload's object is at the server, tagged
        with this job's id, with the expected size and checksum): the job then succeeds instead of being retried or
        failed. ``None`` means "not known" (the default): the lost attempt counts, with backoff, as ``worker lost``.
        May do network I/O; an exception counts as "not known".
        """
        return None

    def restage(self, job: dict[str, Any], settings: Settings, spool: Path) -> Path | None:
        """A retry of a job whose staged input was released: stage it again (default: nothing to stage)."""
        return None

    def summary(self, parameters: dict[str, Any]) -> str:
        """One line for tables and notifications, from ``summary_fields``."""
        return summary_line(self.summary_spec(), parameters)

    def summary_spec(self) -> list[dict[str, Any]]:
        """``summary_fields`` as front ends get them: each field's name and whether it is a path shown by name."""
        properties = self.Params.model_json_schema().get("properties") or {}
        names = self.summary_fields or tuple(properties)[:1]
        return [{"field": n, "path": (properties.get(n) or {}).get("format") == "file-path"} for n in names]

    def probe(self, settings: Settings, credentials: Credentials) -> str:
        """Connect with the job's own connection code and say plainly what worked ("Test connection" in Settings);
        raise ``JobdeckError`` with what failed. A type with nothing to connect to says so."""
        return f"{self.label}: nothing to test (this job type connects to no server)."

    def missing(self, settings: Settings, configured: set[str], credentials: Credentials) -> list[str]:
        """What a job of this type would fail for lack of, in words (empty: nothing known to be missing).

        ``configured`` holds the settings given in the config file or the environment (the rest are defaults)."""
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "schema": self.Params.model_json_schema(),
        }


def summary_line(spec: list[dict[str, Any]], parameters: dict[str, Any]) -> str:
    """The summary ``spec`` (``JobType.summary_spec``) makes of these parameters, at most 120 characters."""
    parts = []
    for item in spec:
        value = parameters.get(item["field"])
        if value is None or value == "":
            continue
        text = str(value)
        if item.get("path"):
            text = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        parts.append(text.splitlines()[0] if text.strip() else text)
    return " — ".join(parts)[:120]


def remove_staged(path: Path) -> None:
    """Remove a staged file and its per-job folder in the spool."""
    try:
        path.unlink(missing_ok=True)
        parent = path.parent
        if parent.name.startswith("job-") and not any(parent.iterdir()):
            parent.rmdir()
    except OSError:
        pass
