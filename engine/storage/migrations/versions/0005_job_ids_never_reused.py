"""On SQLite, jobs gets AUTOINCREMENT, so that a job id is never handed out twice.

A plain rowid key gives a new row the highest key in the table plus one: deleting the newest job gave its id to the
next one, whose ``show`` then listed the deleted job's events too (``job_events`` keeps them), and an id that a user
had been told about could name another job. AUTOINCREMENT keeps the highest id ever used in ``sqlite_sequence``.
Upgrading starts that counter above every id the ledger still mentions, its events included, so that a job deleted
before the upgrade does not lend its id either. PostgreSQL's sequences never go back: nothing to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import warnings

from alembic import op
from sqlalchemy.exc import SAWarning

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild_jobs(autoincrement=True)
    # The copy left the highest remaining id in sqlite_sequence (or no row, if no job is left).
    mentioned = "(SELECT coalesce(max(job_id), 0) FROM job_events)"
    op.execute(f"UPDATE sqlite_sequence SET seq = max(seq, {mentioned}) WHERE name = 'jobs'")
    op.execute(
        f"INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', {mentioned}"
        " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_jobs(autoincrement=False)


def _rebuild_jobs(*, autoincrement: bool) -> None:
    """SQLite cannot alter a table's key: Alembic's batch mode copies jobs into a new table, ids kept. Its
    reflection skips expression indexes (revision 0004's sort indexes), so every index is made again from the SQL
    that SQLite kept for it."""
    bind = op.get_bind()
    indexes = bind.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"
    ).all()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
        with op.batch_alter_table("jobs", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass
    kept = set(bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
    for name, sql in indexes:
        if name not in kept:
            op.execute(sql)
