"""The job-type registry: built-in types plus those named in JOBDECK_JOB_MODULES."""

from __future__ import annotations

import importlib
import os
from typing import TypeVar

from engine.errors import JobModuleError, ValidationError
from engine.jobs.base import JobType

BUILTIN_MODULES = ("engine.jobs.email", "engine.jobs.upload")

_types: dict[str, JobType] = {}
_loaded = False

T = TypeVar("T", bound=type[JobType])


def register(cls: T) -> T:
    """Class decorator: one instance per type, keyed by its stable name."""
    _types[cls.name] = cls()
    return cls


def load() -> dict[str, JobType]:
    """Every job type, importing their modules on first use. The worker calls this at start-up: the built-in
    upload type pulls in boto3 (a quarter of a second), which the first job must not wait for, and a mistyped
    module name must stop the worker before it claims anything rather than strand the jobs it claimed."""
    global _loaded
    if not _loaded:
        extra = [m.strip() for m in os.environ.get("JOBDECK_JOB_MODULES", "").split(",") if m.strip()]
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for module in extra:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise JobModuleError(
                    f"cannot import job module {module!r} named in JOBDECK_JOB_MODULES: {exc}"
                ) from exc
        _loaded = True
    return _types


def get(name: str) -> JobType:
    types = load()
    try:
        return types[name]
    except KeyError:
        raise ValidationError(
            "job_type", f"unknown job type {name!r}; known types: {', '.join(sorted(types))}"
        ) from None
