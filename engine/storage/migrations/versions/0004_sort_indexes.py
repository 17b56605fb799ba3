"""An index for each order the jobs table can be sorted in: (sort key, id).

A view of a million jobs sorted by any column asks the ledger for one page at a time; with an index on the key and
the id (the tie-break, in the same direction) the first page, the last page (the order reversed) and a page deep
inside (ids skipped in the index alone) are each an index walk instead of a sort of the whole table. The keys are
those of ``engine.storage.reads.SORT_KEYS``; SQLite and PostgreSQL match an expression index to the same
expression in a query.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _indexes(dialect: str) -> dict[str, list[str | sa.TextClause]]:
    duration = (
        "(round((julianday(finished_at) - julianday(started_at)) * 86400000))"
        if dialect == "sqlite"
        else "(finished_at - started_at)"
    )
    return {
        "ix_jobs_sort_type": ["job_type", "id"],
        "ix_jobs_sort_status": ["status", "id"],
        "ix_jobs_sort_priority": ["priority", "id"],
        "ix_jobs_sort_attempts": ["attempts", "id"],
        "ix_jobs_sort_when": [sa.text("(coalesce(next_attempt_at, scheduled_time))"), "id"],
        "ix_jobs_sort_created": ["created_at", "id"],
        "ix_jobs_sort_duration": [sa.text(duration), "id"],
        "ix_jobs_sort_outcome": [sa.text("(substr(error, 1, 100))"), "id"],
    }


def upgrade() -> None:
    for name, columns in _indexes(op.get_bind().dialect.name).items():
        op.create_index(name, "jobs", columns)
    op.drop_index("ix_jobs_created_at", "jobs")  # (created_at, id) serves every query it served


def downgrade() -> None:
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    for name in _indexes(op.get_bind().dialect.name):
        op.drop_index(name, "jobs")
