"""jobs.cancel_requested_at: an operator asked a running job to stop.

A waiting job is canceled at once; a running one belongs to its worker, which alone ends it. The request is kept in
the ledger, not only told to the worker, so that it survives the worker: the worker that takes over a job whose
worker was lost cancels it instead of retrying it (see ``engine.worker.executor``). A retry clears it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Not Alembic's batch mode: on SQLite it copies the table and loses revision 0004's expression indexes.
    op.execute("ALTER TABLE jobs DROP COLUMN cancel_requested_at")
