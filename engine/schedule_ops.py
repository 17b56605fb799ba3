"""Schedule operations for every front end (CLI, control channel, window): check the input, then one ledger change.

As with jobs, nothing is written when the input is wrong: a ``ValidationError`` names the field (``cron``,
``every``, ``tz``, ``catch_up``…) and says what is allowed. The job template is checked by the job type's own
parameter model, so a schedule never holds parameters its runs would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.config import DEFAULT_PRIORITY
from engine.errors import ValidationError
from engine.jobs import registry
from engine.jobs.base import JobType
from engine.schedule_rules import RULE_HINT, Rule, parse_cron, parse_every, parse_rule, zone
from engine.schedule_rules import local_zone_name as _local_zone_name
from engine.storage.rows import utcnow
from engine.storage.schedules import CATCH_UP_LIMIT, first_cursor, resume_values, schedule_to_dict
from engine.storage.status import CATCH_UP_POLICIES, OVERLAP_POLICIES

if TYPE_CHECKING:
    from engine.operations import Operations

MAX_NAME = 200
CATCH_UP_DEFAULT = "once"
OVERLAP_DEFAULT = "skip"
_UNSET: Any = object()


def parse_schedule_id(value: Any) -> int:
    from engine.operations import parse_int

    return parse_int("id", value, 1, 2**63 - 1, "a positive schedule id")


def _rule(cron: Any, every: Any, rule: Any = None) -> Rule:
    """The rule from ``--cron`` or ``--every`` (the CLI), or from ``rule``: the single text field of an editor."""
    given = [name for name, value in (("cron", cron), ("every", every), ("rule", rule)) if value not in (None, "")]
    if len(given) > 1:
        raise ValidationError(given[0], f"give one rule: {' or '.join(given)}, not both")
    if cron not in (None, ""):
        return parse_cron(str(cron))
    if every not in (None, ""):
        return parse_every(str(every))
    if rule not in (None, ""):
        return parse_rule(str(rule))
    raise ValidationError("cron", f"a schedule needs a rule: {RULE_HINT}")


def refusal(kind: JobType) -> str | None:
    """Why a job type cannot be scheduled, in one line; None when it can.

    Each run is submitted at its planned time (the type's ``prepare`` runs then: an upload reads its file then). A
    type that prepares its input but has no ``check_template`` cannot say whether a template is right before its
    first run, so it is refused rather than failing at every run."""
    if type(kind).prepare is JobType.prepare or type(kind).check_template is not JobType.check_template:
        return None
    return (
        f"{kind.name} cannot be scheduled: it prepares its input when a job is submitted and cannot check a "
        "template; submit each one instead (with a time, to run it later)"
    )


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValidationError(field, f"must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)


def _template(ops: Operations, job_type: str, parameters: Any) -> tuple[JobType, dict[str, Any]]:
    """The job type and the parameters a schedule keeps, judged by the type as a submission would be."""
    from engine.operations import validate_params

    kind = registry.get(job_type)
    refused = refusal(kind)
    if refused:
        raise ValidationError("job_type", refused)
    params = validate_params(kind, parameters or {})
    stored = kind.check_template(params, ops.settings, ops.paths.spool)
    assert stored is not None  # refusal() said the type can check its template
    return kind, stored


class ScheduleOperations:
    """add, list, show, pause, resume, run now, edit, delete — once, for every front end."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self.local_zone: Callable[[], str] = _local_zone_name

    def _changed(self) -> None:
        """Tell a running worker (its scheduler sleeps until the next planned time it knows of)."""
        if self.ops.after_enqueue is not None:
            self.ops.after_enqueue()

    # ------------------------------------------------------------------ reads
    def list(self, recent: Any = 0) -> list[dict[str, Any]]:
        """Every schedule; with ``recent`` N, each carries ``recent_runs``: its latest N runs (id, status,
        planned time), the latest first, for a list that shows how each schedule's runs went."""
        from engine.operations import parse_int

        count = parse_int("recent", recent, 0, 100, "a number, 0–100")
        now = utcnow()
        schedules = [schedule_to_dict(row, now) for row in self.ops.ledger.schedule_rows()]
        if count:
            runs = self.ops.ledger.schedule_recent_runs(count)
            for schedule in schedules:
                schedule["recent_runs"] = runs.get(schedule["id"], [])
        return schedules

    def options(self) -> dict[str, Any]:
        """What an editor offers: the catch-up and overlap policies, their defaults, and the zone a schedule gets
        when none is given (this computer's, by name)."""
        return {
            "catch_up": list(CATCH_UP_POLICIES), "catch_up_default": CATCH_UP_DEFAULT, "catch_up_limit": CATCH_UP_LIMIT,
            "overlap": list(OVERLAP_POLICIES), "overlap_default": OVERLAP_DEFAULT, "local_tz": self.local_zone(),
        }  # fmt: skip

    def preview(
        self, *, cron: str | None = None, every: str | None = None, rule: str | None = None, tz: str | None = None,
        start: Any = None, end: Any = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A rule checked as ``add`` checks it, in plain language with its next 5 planned times; nothing written.
        For an editor that shows them as the user types, and refuses a bad rule inline (the error names the field).
        """
        checked = _rule(cron, every, rule)
        now = utcnow()
        values = {"rule": checked.text, "tz": self._tz(tz), "start_at": _time("start", start),
                  "end_at": _time("end", end), "created_at": now}  # fmt: skip
        _check_window(values)
        first = first_cursor(values, now)
        shown = schedule_to_dict(
            {**values, "id": None, "name": "", "job_type": "", "parameters": {}, "priority": 0, "max_retries": 0,
             "catch_up": "once", "overlap": "skip", "paused": False, "pause_note": None, "paused_until": None,
             "next_run_at": first, "updated_at": now}, now,
        )  # fmt: skip
        return {key: shown[key] for key in ("rule", "kind", "description", "tz", "next_run_at", "next_runs")}

    def get(self, schedule_id: Any, *, runs: int = 20) -> dict[str, Any]:
        """The schedule with its latest runs (the jobs it made, newest planned time first)."""
        sid = parse_schedule_id(schedule_id)
        schedule = schedule_to_dict(self.ops.ledger.schedule_row(sid))
        from engine.operations import parse_int

        schedule["runs"] = self.ops.ledger.schedule_runs(sid, parse_int("runs", runs, 0, 1000, "a number, 0–1000"))
        return schedule

    # ------------------------------------------------------------------ changes
    def add(
        self,
        job_type: str,
        parameters: dict[str, Any] | None = None,
        *,
        cron: str | None = None,
        every: str | None = None,
        rule: str | None = None,
        name: str | None = None,
        tz: str | None = None,
        priority: Any = None,
        max_retries: Any = None,
        catch_up: str | None = None,
        overlap: str | None = None,
        start: Any = None,
        end: Any = None,
    ) -> dict[str, Any]:
        from engine.operations import parse_max_retries, parse_priority

        checked = _rule(cron, every, rule)
        kind, params = _template(self.ops, job_type, parameters)
        values = {
            "job_type": kind.name,
            "parameters": params,
            "rule": checked.text,
            "name": _name(name) if name not in (None, "") else f"{kind.name} {checked.text}",
            "tz": self._tz(tz),
            "priority": parse_priority(DEFAULT_PRIORITY if priority is None else priority),
            "max_retries": parse_max_retries(
                self.ops.settings.default_max_retries if max_retries is None else max_retries
            ),
            "catch_up": _choice("catch_up", catch_up or CATCH_UP_DEFAULT, CATCH_UP_POLICIES),
            "overlap": _choice("overlap", overlap or OVERLAP_DEFAULT, OVERLAP_POLICIES),
            "start_at": _time("start", start),
            "end_at": _time("end", end),
        }
        _check_window(values)
        schedule = self.ops.ledger.schedule_add(values)
        self._changed()
        return schedule

    def edit(
        self,
        schedule_id: Any,
        *,
        job_type: str | None = None,
        parameters: dict[str, Any] | None = None,
        cron: str | None = None,
        every: str | None = None,
        rule: str | None = None,
        name: str | None = None,
        tz: str | None = None,
        priority: Any = None,
        max_retries: Any = None,
        catch_up: str | None = None,
        overlap: str | None = None,
        start: Any = _UNSET,
        end: Any = _UNSET,
    ) -> dict[str, Any]:
        """Change what is given; the rest stays. A new rule, zone or start moves the next run to the rule's first
        planned time from now."""
        from engine.operations import parse_max_retries, parse_priority

        sid = parse_schedule_id(schedule_id)
        current = self.ops.ledger.schedule_row(sid)
        values: dict[str, Any] = {}
        if job_type is not None or parameters is not None:
            kind, params = _template(self.ops, job_type or current["job_type"], current["parameters"]
                                     if parameters is None else parameters)  # fmt: skip
            values |= {"job_type": kind.name, "parameters": params}
        if any(value not in (None, "") for value in (cron, every, rule)):
            values["rule"] = _rule(cron, every, rule).text
        if name is not None:
            values["name"] = _name(name)
        if tz is not None:
            values["tz"] = self._tz(tz)
        if priority is not None:
            values["priority"] = parse_priority(priority)
        if max_retries is not None:
            values["max_retries"] = parse_max_retries(max_retries)
        if catch_up is not None:
            values["catch_up"] = _choice("catch_up", catch_up, CATCH_UP_POLICIES)
        if overlap is not None:
            values["overlap"] = _choice("overlap", overlap, OVERLAP_POLICIES)
        if start is not _UNSET:
            values["start_at"] = _time("start", start)
        if end is not _UNSET:
            values["end_at"] = _time("end", end)
        _check_window({**current, **values})
        timing = {"rule", "tz", "start_at", "end_at"} & values.keys()

        def change(row: dict[str, Any]) -> dict[str, Any]:
            new = {**row, **values}
            return values | ({"next_run_at": first_cursor(new, utcnow())} if timing else {})

        schedule = self.ops.ledger.schedule_change(sid, change, "schedule_edited")
        self._changed()
        return schedule

    def pause(self, schedule_id: Any, note: str | None = None, until: Any = None) -> dict[str, Any]:
        """No runs until resumed (or until ``until``); planned times that pass meanwhile are not caught up."""
        sid = parse_schedule_id(schedule_id)
        when = None if until in (None, "") else _time("until", until, future=True)
        text = None if note in (None, "") else str(note)[:1000]
        schedule = self.ops.ledger.schedule_change(
            sid, lambda _row: {"paused": True, "pause_note": text, "paused_until": when}, "schedule_paused"
        )
        self._changed()
        return schedule

    def resume(self, schedule_id: Any) -> dict[str, Any]:
        sid = parse_schedule_id(schedule_id)
        schedule = self.ops.ledger.schedule_change(sid, lambda row: resume_values(row, utcnow()), "schedule_resumed")
        self._changed()
        return schedule

    def run_now(self, schedule_id: Any) -> dict[str, Any]:
        """One run of the template now, paused or not; the rule's planned times are unchanged. Returns the job."""
        sid = parse_schedule_id(schedule_id)
        job = self.ops.ledger.schedule_run_now(sid, self.ops._outbox, prepare=self.ops.prepare_run)
        self.ops._enqueued([job])  # the job's queue message (unless the outbox wrote it), then wake the worker
        return job

    def delete(self, schedule_id: Any) -> dict[str, Any]:
        """The schedule goes; the jobs it made stay (with its id in ``schedule_id``)."""
        schedule = self.ops.ledger.schedule_delete(parse_schedule_id(schedule_id))
        self._changed()
        return schedule

    def _tz(self, tz: Any) -> str:
        name = self.local_zone() if tz in (None, "") else str(tz).strip()
        zone(name)
        return name


def _name(name: Any) -> str:
    text = " ".join(str(name).split())
    if not text or len(text) > MAX_NAME:
        raise ValidationError("name", f"must be 1 to {MAX_NAME} characters")
    return text


def _time(field: str, value: Any, *, future: bool = False) -> datetime | None:
    from engine.operations import parse_time

    return None if value in (None, "") else parse_time(field, value, future=future)


def _check_window(values: dict[str, Any]) -> None:
    start, end = values.get("start_at"), values.get("end_at")
    if start is not None and end is not None and end <= start:
        raise ValidationError("end", f"{end.isoformat()} is not after the start ({start.isoformat()})")
