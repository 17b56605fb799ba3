"""The ledger tables. The Alembic migrations are the schema's authority; these mirror them for queries.

Plain Core tables: the ledger builds statements, never maps objects, and a command that opens the ledger should
not pay for importing the ORM."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) as on PostgreSQL.

    On SQLite the text is what SQLAlchemy's DATETIME writes (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so it sorts and
    compares as time; it is converted here with the C-level ``isoformat``/``fromisoformat`` because SQLAlchemy's
    own (regular-expression) conversion was a measurable part of every ledger transition.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(self.impl)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, ``sqlite_text`` itself: the generic wrapper that a TypeDecorator puts around
        ``process_bind_param`` costs as much again as the conversion, and a create binds two times."""
        if dialect.name == "sqlite":
            return sqlite_text
        return super().bind_processor(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if dialect.name == "sqlite":
            return sqlite_text(value)
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_text(value: datetime | None) -> str | None:
    """An aware datetime as the ledger's SQLite text, in UTC: ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without its offset, always +00:00


METADATA = MetaData()


def _when(name: str, nullable: bool = True) -> Column[datetime]:
    return Column(name, UtcDateTime, nullable=nullable)


JOBS = Table(
    "jobs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_type", String(64), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=5),
    Column("max_retries", Integer, nullable=False, default=3),
    Column("attempts", Integer, nullable=False, default=0),
    Column("schedule_type", String(16), nullable=False),
    _when("scheduled_time"),
    _when("next_attempt_at"),
    _when("created_at", nullable=False),
    _when("started_at"),
    _when("finished_at"),
    _when("heartbeat_at"),
    Column("worker_id", String(64), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("traceback", Text, nullable=True),
    Column("retry_base_s", Float, nullable=True),
    Column("retry_cap_s", Float, nullable=True),
    Column("staged_path", Text, nullable=True),
    Column("checkpoint", JSON, nullable=True),
    # Bumped by every UPDATE (see engine.storage.repository): a claim prepared from a row read before the write
    # lock was taken is still right if the version has not moved.
    Column("version", Integer, nullable=False, server_default="0"),
    # A job made by a schedule: which one, and the planned time it is the run for (revision 0007).
    Column("schedule_id", Integer, nullable=True),
    _when("planned_at"),
    # An operator asked this running job to stop; its worker cancels it at its next safe point (revision 0010).
    _when("cancel_requested_at"),
    Index("ix_jobs_status_type", "status", "job_type"),
    Index("ix_jobs_schedule_planned", "schedule_id", "planned_at", unique=True),
    # and the sort indexes of revision 0004, (key, id) for each of ``reads.SORT_KEYS``
    sqlite_autoincrement=True,  # an id is never handed out twice (revision 0005)
)

EVENTS = Table(
    "job_events",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("payload", JSON, nullable=False),
    _when("at", nullable=False),
    Index("ix_job_events_job_id", "job_id"),
)

# A recurring job: a job template plus a rule (cron or interval) in a named time zone; see revision 0007.
# ``next_run_at`` is the earliest planned time not yet dealt with (run, skipped or caught up): the scheduler's
# cursor, moved in the same transaction as the job it makes for that time.
SCHEDULES = Table(
    "schedules",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("job_type", String(64), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("rule", String(200), nullable=False),
    Column("tz", String(64), nullable=False),
    _when("start_at"),
    _when("end_at"),
    Column("catch_up", String(8), nullable=False),
    Column("overlap", String(8), nullable=False),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("pause_note", Text, nullable=True),
    _when("paused_until"),
    _when("next_run_at"),
    _when("created_at", nullable=False),
    _when("updated_at", nullable=False),
    Index("ix_schedules_next_run_at", "next_run_at"),
    sqlite_autoincrement=True,
)

# A deleted job's whole row (``row``, JSON), kept until it is restored or purged; see revision 0006.
TRASH = Table(
    "job_trash",
    METADATA,
    Column("trash_id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, nullable=False),
    Column("job_type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    _when("deleted_at", nullable=False),
    Column("batch", String(32), nullable=False),  # one delete's jobs: what its "Undo" restores
    Column("row", JSON, nullable=False),
    Index("ix_job_trash_deleted_at", "deleted_at"),
    Index("ix_job_trash_batch", "batch"),
)
