"""Fewer B-trees for each write to touch: one status index instead of two, no (type, at) index on job_events,
and on SQLite no AUTOINCREMENT on job_events.

Every page a transaction changes is written to the WAL at its commit (and re-read by the next writer of the other
process, whose page cache a foreign commit empties), and a create's transaction holds the write lock that the
worker waits for. A create touched ten B-trees and a claim or a success moved a job in two status indexes.

- ``ix_jobs_status_type`` (status, job_type) serves what ``ix_jobs_status`` and ``ix_jobs_type_status`` served:
  lookups by status, the counts grouped by status and type, and (by scanning it) counts by type.
- ``ix_job_events_type_at`` served one statistic, the jobs finished in the last hour; ``job_events`` is in time
  order by ``seq`` (see ``LedgerReads.finished_events_since``).
- AUTOINCREMENT made every event insert update ``sqlite_sequence`` too. It only matters when the rows with the
  highest seq are deleted, and ``job_events`` is append-only: a plain rowid key never reuses a seq either.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)  # as revision 0001 created it


def upgrade() -> None:
    op.drop_index("ix_jobs_status", "jobs")
    op.drop_index("ix_jobs_type_status", "jobs")
    op.create_index("ix_jobs_status_type", "jobs", ["status", "job_type"])
    op.drop_index("ix_job_events_type_at", "job_events")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_events(autoincrement=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_events(autoincrement=True)
    op.create_index("ix_job_events_type_at", "job_events", ["type", "at"])
    op.drop_index("ix_jobs_status_type", "jobs")
    op.create_index("ix_jobs_type_status", "jobs", ["job_type", "status"])
    op.create_index("ix_jobs_status", "jobs", ["status"])


def _rebuild_events(*, autoincrement: bool) -> None:
    """SQLite cannot alter a table's key: copy job_events into a new table, seq values kept."""
    op.create_table(
        "job_events_new",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sqlite_autoincrement=autoincrement,
    )
    columns = "seq, job_id, type, payload, at"
    op.execute(f"INSERT INTO job_events_new ({columns}) SELECT {columns} FROM job_events")
    op.drop_index("ix_job_events_job_id", "job_events")
    op.drop_table("job_events")
    op.rename_table("job_events_new", "job_events")
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
