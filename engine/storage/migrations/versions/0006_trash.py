"""The trash: deleted jobs are kept (for ``trash_days``, 30 by default) so that a delete can be undone.

A trashed job is its whole ledger row as JSON, so the trash follows later changes to the jobs table without a
migration of its own.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_trash",
        sa.Column("trash_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("job_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("batch", sa.String(32), nullable=False),
        sa.Column("row", sa.JSON, nullable=False),
    )
    op.create_index("ix_job_trash_deleted_at", "job_trash", ["deleted_at"])
    op.create_index("ix_job_trash_batch", "job_trash", ["batch"])


def downgrade() -> None:
    op.drop_table("job_trash")
