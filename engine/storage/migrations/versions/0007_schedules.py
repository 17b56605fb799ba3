"""Schedules: recurring jobs. A job a schedule made records the schedule and its planned time, unique together.

The unique index on ``jobs (schedule_id, planned_at)`` is what keeps a planned time from running twice, whatever
crashes between the scheduler's reads and its write: the job and the schedule's next planned time commit together,
and a second attempt at the same planned time inserts nothing. Jobs made by hand leave both NULL (NULLs never clash).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("job_type", sa.String(64), nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("max_retries", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("catch_up", sa.String(8), nullable=False),
        sa.Column("overlap", sa.String(8), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pause_note", sa.Text, nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedules_next_run_at", "schedules", ["next_run_at"])
    op.add_column("jobs", sa.Column("schedule_id", sa.Integer, nullable=True))
    op.add_column("jobs", sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_jobs_schedule_planned", "jobs", ["schedule_id", "planned_at"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_schedule_planned", "jobs")
    # Not Alembic's batch mode: on SQLite it copies the table and loses revision 0004's expression indexes.
    for column in ("planned_at", "schedule_id"):
        op.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
    op.drop_table("schedules")
