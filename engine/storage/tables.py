"""The ledger tables. The Alembic migrations are the schema's authority; these mirror them for queries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Table, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UtcDateTime}
    # Every model here is mapped to a plain Table (no joins or subqueries), and the statements
    # built on `Model.__table__` (insert/update/delete) need it typed as one.
    __table__: ClassVar[Table]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_type: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    max_retries: Mapped[int] = mapped_column(Integer, default=3)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    schedule_type: Mapped[str] = mapped_column(String(16))
    scheduled_time: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_base_s: Mapped[float | None] = mapped_column(nullable=True)
    retry_cap_s: Mapped[float | None] = mapped_column(nullable=True)
    staged_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Bumped by every UPDATE (see engine.storage.repository): a claim prepared from a row read before the write
    # lock was taken is still right if the version has not moved.
    version: Mapped[int] = mapped_column(Integer, server_default="0")
    # A job made by a schedule: which one, and the planned time it is the run for (revision 0007).
    schedule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    planned_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        Index("ix_jobs_status_type", "status", "job_type"),
        Index("ix_jobs_schedule_planned", "schedule_id", "planned_at", unique=True),
        # and the sort indexes of revision 0004, (key, id) for each of ``reads.SORT_KEYS``
        {"sqlite_autoincrement": True},  # an id is never handed out twice (revision 0005)
    )


class JobEvent(Base):
    __tablename__ = "job_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_job_events_job_id", "job_id"),)


class Schedule(Base):
    """A recurring job: a job template plus a rule (cron or interval) in a named time zone; see revision 0007.

    ``next_run_at`` is the earliest planned time not yet dealt with (run, skipped or caught up): the scheduler's
    cursor, moved in the same transaction as the job it makes for that time.
    """

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    job_type: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(200))
    tz: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    catch_up: Mapped[str] = mapped_column(String(8))
    overlap: Mapped[str] = mapped_column(String(8))
    paused: Mapped[bool] = mapped_column(Boolean, server_default="0")
    pause_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    paused_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_schedules_next_run_at", "next_run_at"), {"sqlite_autoincrement": True})


class JobTrash(Base):
    """A deleted job's whole row (``row``, JSON), kept until it is restored or purged; see revision 0006."""

    __tablename__ = "job_trash"

    trash_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer)
    job_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    deleted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    batch: Mapped[str] = mapped_column(String(32))  # one delete's jobs: what its "Undo" restores
    row: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_job_trash_deleted_at", "deleted_at"), Index("ix_job_trash_batch", "batch"))
