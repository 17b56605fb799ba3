"""The non-secret settings with their defaults and overrides (where Jobdeck keeps its files: ``engine.paths``).

Settings resolve in this order: the process environment (the original system's variable names, for headless
use), then the ``config.json`` file under JOBDECK_HOME, then the defaults below. Secrets are not settings: they
live in the keyring (see ``engine.credentials``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from engine.errors import ValidationError

# The paths moved to their own module, which imports neither pydantic nor SQLAlchemy; re-exported for callers.
from engine.paths import APP_NAME as APP_NAME
from engine.paths import Paths as Paths
from engine.paths import home as home
from engine.paths import make_private as make_private
from engine.paths import sqlite_file as sqlite_file

DEFAULT_PRIORITY = 5
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BASE_S = 2.0
DEFAULT_RETRY_CAP_S = 600.0
DEFAULT_CONCURRENCY = 4
DEFAULT_MAX_UPLOAD_BYTES = 5 * 1024**3
LEASE_SECONDS = 30.0
HEARTBEAT_SECONDS = 5.0
SHUTDOWN_GRACE_S = 10.0


TlsMode = Literal["plain", "starttls", "ssl"]
ConflictPolicy = Literal["overwrite", "skip", "rename"]
QuitAction = Literal["ask", "keep", "stop"]


class Settings(BaseModel):
    """Non-secret settings. Unknown keys are rejected when loaded, not discovered at run time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str = ""
    # "plain" suits the default local relay on port 25, which needs no login; with a user set, the password is
    # only sent encrypted unless smtp_allow_insecure_auth says otherwise (see engine.jobs.smtp).
    smtp_tls: TlsMode = "plain"
    smtp_allow_insecure_auth: bool = False
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    email_from: str = "jobdeck@localhost"

    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_endpoint_url: str = ""
    s3_path_style: bool = False
    s3_key_prefix: str = ""
    upload_conflict: ConflictPolicy = "overwrite"
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)
    multipart_threshold_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2)
    multipart_part_bytes: int = Field(default=16 * 1024**2, ge=5 * 1024**2)
    multipart_concurrency: int = Field(default=4, ge=1, le=32)
    bandwidth_limit_bytes_s: int = Field(default=0, ge=0, description="0 means unlimited")

    retry_base_s: float = Field(default=DEFAULT_RETRY_BASE_S, gt=0, le=86_400)
    retry_cap_s: float = Field(default=DEFAULT_RETRY_CAP_S, gt=0, le=86_400)
    default_max_retries: int = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=100)
    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=64)
    shutdown_grace_s: float = Field(default=SHUTDOWN_GRACE_S, ge=0, le=3600)

    event_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port at start")
    allowed_origins: list[str] = Field(default_factory=list)

    trash_days: int = Field(default=30, ge=0, le=3650, description="days a deleted job can still be restored")

    notify_success: bool = False
    close_to_tray: bool = False
    on_quit: QuitAction = "ask"


# The original system's variable names, kept so headless deployments need no new configuration.
ENV_OVERRIDES: dict[str, str] = {
    "EMAIL_HOST": "smtp_host",
    "EMAIL_PORT": "smtp_port",
    "EMAIL_HOST_USER": "smtp_user",
    "JOBDECK_EMAIL_FROM": "email_from",
    "AWS_STORAGE_BUCKET_NAME": "s3_bucket",
    "AWS_REGION": "s3_region",
    "JOBDECK_S3_ENDPOINT_URL": "s3_endpoint_url",
}


_ENV_NAMES = (*ENV_OVERRIDES, "EMAIL_USE_TLS", "EMAIL_USE_SSL")
_TRUE = {"1", "true", "yes", "on"}


def _env_overrides() -> dict[str, Any]:
    return {key: value for key, (value, _) in env_sources().items()}


def env_sources() -> dict[str, tuple[Any, str]]:
    """Each setting the environment overrides: its value and the variable it came from."""
    values: dict[str, tuple[Any, str]] = {
        key: (os.environ[var], var) for var, key in ENV_OVERRIDES.items() if os.environ.get(var)
    }
    use_tls = os.environ.get("EMAIL_USE_TLS")
    if use_tls:
        values["smtp_tls"] = ("starttls" if use_tls.strip().lower() in _TRUE else "plain", "EMAIL_USE_TLS")
    if (os.environ.get("EMAIL_USE_SSL") or "").strip().lower() in _TRUE:  # implicit TLS (port 465), as Django names it
        values["smtp_tls"] = ("ssl", "EMAIL_USE_SSL")
    return values


def origins(paths: Paths | None = None) -> dict[str, str]:
    """Where each setting's value comes from, as `config show` labels it: ``env NAME``, ``file`` or ``default``."""
    from_env = env_sources()
    in_file = load_file(paths)
    return {
        field: f"env {from_env[field][1]}" if field in from_env else "file" if field in in_file else "default"
        for field in Settings.model_fields
    }


# What pydantic calls a fault → how Jobdeck words it (the rest keep pydantic's message, which names the rule).
_WORDING = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
}
_BOUNDS = {"greater_than_equal": "at least {ge}", "less_than_equal": "at most {le}", "greater_than": "more than {gt}",
           "less_than": "less than {lt}"}  # fmt: skip


def _first_error(exc: PydanticValidationError) -> ValidationError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(Settings.model_fields))
        return ValidationError(field, f"unknown setting; known settings: {allowed}")
    given = f"{err['input']!r} " if isinstance(err.get("input"), str | int | float | bool) else ""
    if kind in _WORDING:
        text = _WORDING[kind]
    elif kind in _BOUNDS:
        text = "must be " + _BOUNDS[kind].format(**ctx)
    elif kind == "literal_error":
        text = f"must be one of: {ctx.get('expected', '')}".replace("'", "")
    else:
        text = err["msg"][0].lower() + err["msg"][1:]
    source = env_sources().get(str(field))
    where = f" (from the environment variable {source[1]})" if source else ""
    return ValidationError(field, f"{given}{text}{where}".strip())


def load_file(paths: Paths | None = None) -> dict[str, Any]:
    path = (paths or Paths()).config
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError("config", f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError("config", f"{path} must hold a JSON object")
    return data


_cache: dict[Path, tuple[tuple[Any, ...], Settings]] = {}
ENV_RECHECK_S = 1.0  # how long the environment's overrides are taken as unchanged (see ``load_settings``)
_env_seen: tuple[float, tuple[str | None, ...]] = (-1.0, ())  # (until when, the overrides' values)


def load_settings(paths: Paths | None = None) -> Settings:
    """File values, then environment overrides on top.

    Every job submitted and every pass of the worker reads settings, so the parsed result is reused until the file
    or the environment overrides change: a stat per call instead of a JSON parse and a validation. The environment
    is looked at once a second at most (ten lookups of mostly absent names cost as much as the stat): only this
    process can change it, and nothing does so while it runs but tests.
    """
    global _env_seen
    paths = paths or Paths()
    config = paths.config
    try:
        stat = os.stat(config)
        file_key: tuple[Any, ...] = (stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        file_key = ()
    now = time.monotonic()
    if now >= _env_seen[0]:
        _env_seen = (now + ENV_RECHECK_S, tuple(map(os.environ.get, _ENV_NAMES)))
    key = (file_key, _env_seen[1])
    cached = _cache.get(config)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        settings = Settings(**{**load_file(paths), **_env_overrides()})
    except PydanticValidationError as exc:
        raise _first_error(exc) from None
    _cache[config] = (key, settings)
    return settings


def settings_from(values: dict[str, Any]) -> Settings:
    """Settings made from these values (not saved), or a ``ValidationError`` worded as ``config set`` words it."""
    try:
        return Settings(**values)
    except PydanticValidationError as exc:
        raise _first_error(exc) from None


def known_setting(key: str) -> str:
    if key not in Settings.model_fields:
        allowed = ", ".join(sorted(Settings.model_fields))
        raise ValidationError(key, f"unknown setting; known settings: {allowed}")
    return key


def parse_value(key: str, raw: str) -> Any:
    """Turn a command-line string into the setting's type (JSON when it parses, else the plain string)."""
    known_setting(key)
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def save_settings(changes: dict[str, Any], paths: Paths | None = None) -> Settings:
    """Validate the merged file and write it atomically; nothing is written on error."""
    paths = paths or Paths()
    merged = {**load_file(paths), **changes}
    try:
        settings = Settings(**merged)
    except PydanticValidationError as exc:
        raise _first_error(exc) from None
    stored = settings.model_dump(include=set(merged))
    fd, tmp = tempfile.mkstemp(dir=paths.root, prefix=".config-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(stored, fh, indent=2, sort_keys=True)
    os.replace(tmp, paths.config)
    return load_settings(paths)
