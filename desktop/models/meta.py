"""What the engine says about itself (the ``meta`` request), in the shape the views ask for it: statuses with labels
in order, the actions each allows, the statuses a paused worker holds back, and per job type its labels, summary,
link field and what it lacks in the settings. The window keeps no rule of its own: everything here came from the
worker, and until it has spoken the views show no statuses and enable no actions."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.jobs.base import summary_line


class EngineMeta(QObject):
    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.raw: dict[str, Any] = {}
        self.statuses: list[dict[str, Any]] = []
        self.actions: dict[str, tuple[str, ...]] = {}
        self.waiting: tuple[str, ...] = ()
        self.types: dict[str, dict[str, Any]] = {}
        self.search_fields: tuple[str, ...] = ()  # the job fields a search looks in
        self.stop_note = ""  # what a cancel of a running job does
        self._labels: dict[str, str] = {}

    @property
    def loaded(self) -> bool:
        return bool(self.raw)

    def update(self, raw: dict[str, Any]) -> None:
        """The worker's answer to ``meta``; views follow ``changed``."""
        self.raw = dict(raw)
        self.statuses = list(raw.get("statuses") or [])
        self._labels = {str(s["name"]): str(s.get("label") or s["name"]) for s in self.statuses}
        self.actions = {str(a): tuple(allowed) for a, allowed in (raw.get("actions") or {}).items()}
        self.waiting = tuple(raw.get("waiting") or ())
        self.types = {str(t["name"]): t for t in raw.get("types") or []}
        self.search_fields = tuple(raw.get("search_fields") or ())
        self.stop_note = str(raw.get("stop_note") or "")
        self.changed.emit()

    @property
    def status_names(self) -> tuple[str, ...]:
        return tuple(self._labels)

    def status_label(self, status: str) -> str:
        return self._labels.get(status, status)

    def allows(self, action: str) -> tuple[str, ...]:
        """The statuses ``action`` applies to (none until the worker has said)."""
        return self.actions.get(action, ())

    def type_label(self, job_type: str, *, short: bool = True) -> str:
        kind = self.types.get(job_type) or {}
        return str((kind.get("short_label") if short else None) or kind.get("label") or job_type)

    def summary(self, job: dict[str, Any]) -> str:
        """The job's one line, from its type's summary fields (the engine's ``JobType.summary`` makes the same)."""
        kind = self.types.get(str(job.get("job_type", "")))
        if kind is None:
            return ""
        return summary_line(list(kind.get("summary") or []), job.get("parameters") or {})

    def link(self, job: dict[str, Any]) -> str | None:
        """The result's link to what the job made, if its type has one and the job made it."""
        field = (self.types.get(str(job.get("job_type", ""))) or {}).get("link_field")
        result = job.get("result")
        value = result.get(field) if field and isinstance(result, dict) else None
        return str(value) if value else None

    def missing(self, job_type: str) -> list[str]:
        """What a job of this type would fail for lack of in the current settings, in words."""
        return list((self.types.get(job_type) or {}).get("missing") or [])

    def unconfigured(self) -> dict[str, list[str]]:
        """Type label → what it lacks, for each type that lacks something."""
        return {self.type_label(name, short=False): gaps for name in self.types if (gaps := self.missing(name))}
