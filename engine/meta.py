"""What front ends learn from the engine instead of keeping their own copy: statuses with their labels, order and
allowed actions, each job type's label, summary and link field, the settings, what is missing from them, and a
connection probe per job type.

The window builds its status pills, action enabling, type labels and summaries from ``meta``, reads and writes
settings through ``settings``/``settings_set`` (so a change made with ``jobdeck config set`` is what it shows), and
runs "Test connection" as a ``probe`` in the worker, with the job type's own connection code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config import origins, save_settings, settings_from
from engine.credentials.store import Credentials, CredentialStore, check_name
from engine.errors import JobdeckError, ValidationError
from engine.jobs import registry
from engine.storage.reads import SEARCH_FIELDS
from engine.storage.repository import ACTIONS
from engine.storage.status import FINISHED, STATUS_LABELS, STOP_NOTE, WAITING_FOR_WORKER, JobStatus

if TYPE_CHECKING:
    from engine.operations import Operations

MAX_SECRET_CHARS = 4096


class OverlayStore:
    """Secrets typed into a form and not saved yet, in front of the real store, for one probe; read-only."""

    def __init__(self, typed: dict[str, str], store: CredentialStore) -> None:
        self.typed = {k: v for k, v in typed.items() if v}
        self.store = store

    def get(self, name: str) -> str | None:
        return self.typed.get(check_name(name)) or self.store.get(name)

    def set(self, name: str, secret: str) -> None:
        raise JobdeckError("a probe's credentials are read-only")

    def delete(self, name: str) -> None:
        raise JobdeckError("a probe's credentials are read-only")

    def describe(self) -> str:
        return self.store.describe()


class EngineInfo:
    """The ``meta``, ``settings``, ``settings_set`` and ``probe`` requests."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def meta(self) -> dict[str, Any]:
        """Statuses in order with labels and the actions each allows (the tuples the ledger enforces), the statuses
        a paused worker holds back (``waiting``), and per job type its labels, summary fields, link field and what
        a job of it would fail for lack of in the current settings."""
        settings = self.ops.settings
        configured = {name for name, origin in origins(self.ops.paths).items() if origin != "default"}
        statuses = [
            {
                "name": status.value,
                "label": STATUS_LABELS[status],
                "actions": [action for action, allowed in ACTIONS.items() if status in allowed],
                "waiting": status in WAITING_FOR_WORKER,
                "finished": status in FINISHED,
            }
            for status in JobStatus
        ]
        types = []
        described = {t["name"]: t for t in self.ops.types()}  # everything `types` says, and more
        for name, kind in sorted(registry.load().items()):
            types.append(
                {
                    **described[name],
                    "short_label": kind.short_label or kind.label,
                    "summary": kind.summary_spec(),
                    "link_field": kind.link_field,
                    "missing": kind.missing(settings, configured, self.ops.credentials),
                }
            )
        return {
            "statuses": statuses,
            "actions": {action: [s.value for s in allowed] for action, allowed in ACTIONS.items()},
            "waiting": [s.value for s in WAITING_FOR_WORKER],
            "types": types,
            "search_fields": list(SEARCH_FIELDS),
            "stop_note": STOP_NOTE,  # what a cancel of a running job does
        }

    def settings(self) -> dict[str, Any]:
        """The settings in effect (file, then environment, then defaults) and where each comes from."""
        return {"settings": self.ops.settings.model_dump(mode="json"), "origins": origins(self.ops.paths)}

    def settings_set(self, changes: Any) -> dict[str, Any]:
        """Validate and save ``changes`` (name → value) into the config file; nothing is written on error."""
        if not isinstance(changes, dict) or not changes:
            raise ValidationError("changes", "must be an object of setting name → value, with at least one setting")
        save_settings(changes, self.ops.paths)
        from engine.jobs.smtp import login_advice

        return {**self.settings(), "advice": login_advice(self.ops.settings)}

    def check(self, job_type: Any, parameters: Any = None) -> dict[str, Any]:
        """Judge parameters as ``create`` would, writing nothing: ``{"errors": {field: message}}`` (empty: valid).
        A form asks this as each field is left, so it never keeps its own copy of a type's rules."""
        from pydantic import ValidationError as PydanticValidationError

        from engine.operations import field_errors

        kind = registry.get(str(job_type))
        if not isinstance(parameters, dict):
            raise ValidationError("parameters", "must be an object of name → value")
        try:
            kind.Params.model_validate(parameters)
        except PydanticValidationError as exc:
            return {"errors": field_errors(kind, exc)}
        return {"errors": {}}

    def probe(self, job_type: Any, settings: Any = None, secrets: Any = None) -> dict[str, Any]:
        """Connect as a job of ``job_type`` would, with the saved settings overlaid by ``settings`` (not saved) and
        the stored secrets overlaid by ``secrets`` (not stored); ``{"ok", "message"}``, secrets redacted."""
        if not isinstance(job_type, str):
            raise ValidationError("job_type", f"must be a job type name; known: {', '.join(sorted(registry.load()))}")
        kind = registry.get(job_type)
        if settings is not None and not isinstance(settings, dict):
            raise ValidationError("settings", "must be an object of setting name → value")
        typed = self._secrets(secrets)
        effective = settings_from({**self.ops.settings.model_dump(), **(settings or {})})
        # Reading a secret through ``Credentials`` marks it as one to scrub from any text (see ``redact``).
        credentials = Credentials(OverlayStore(typed, self.ops.credentials.store))
        try:
            message = kind.probe(effective, credentials)
            ok = True
        except JobdeckError as exc:
            message, ok = str(exc), False
        except Exception as exc:  # a probe reports what failed, whatever it is
            message, ok = f"{type(exc).__name__}: {exc}", False
        return {"job_type": kind.name, "ok": ok, "message": self.ops.credentials.redact(message)}

    @staticmethod
    def _secrets(secrets: Any) -> dict[str, str]:
        if secrets is None:
            return {}
        if not isinstance(secrets, dict):
            raise ValidationError("secrets", "must be an object of credential name → secret")
        for name, value in secrets.items():
            check_name(str(name))
            if not isinstance(value, str) or len(value) > MAX_SECRET_CHARS:
                raise ValidationError("secrets", f"{name}: must be text of at most {MAX_SECRET_CHARS} characters")
        return {str(k): v for k, v in secrets.items() if v}
