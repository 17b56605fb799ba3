"""An index for sorting by the Summary column: (what the summary shows, lowered, first 100 characters; id).

The summary is made from a job's parameters: recipient and subject for an email, the file name for an upload. The
same text, written as an SQL expression over the parameters, is the sort key, so sorting a million jobs by Summary
is an index walk like every other column's (revision 0004). Other job types sort by their parameters' text. The
expressions are those of ``engine.storage.reads.SUMMARY_SORT`` (copied here: a migration stays as it was written);
an index on an expression serves only that same expression. On PostgreSQL the key compares in the "C" collation
(by code point, as on SQLite), whatever the database's own collation.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SQLITE_PATH = "replace(json_extract(parameters, '$.path'), '\\', '/')"
SUMMARY_SORT = {
    "sqlite": (
        "(substr(lower(CASE job_type"
        " WHEN 'send_email' THEN coalesce(json_extract(parameters, '$.recipient'), '') || ' — '"
        " || coalesce(json_extract(parameters, '$.subject'), '')"
        f" WHEN 'upload_file' THEN replace({_SQLITE_PATH}, rtrim({_SQLITE_PATH}, replace({_SQLITE_PATH}, '/', '')), '')"
        " ELSE parameters END), 1, 100))"
    ),
    "postgresql": (
        "(substr(lower(CASE job_type"
        " WHEN 'send_email' THEN coalesce(parameters ->> 'recipient', '') || ' — '"
        " || coalesce(parameters ->> 'subject', '')"
        " WHEN 'upload_file' THEN regexp_replace(parameters ->> 'path', '^.*[/\\\\]', '')"
        ' ELSE CAST(parameters AS TEXT) END), 1, 100) COLLATE "C")'
    ),
}


def upgrade() -> None:
    expression = SUMMARY_SORT[op.get_bind().dialect.name]
    op.execute(f"CREATE INDEX ix_jobs_sort_summary ON jobs ({expression}, id)")


def downgrade() -> None:
    op.drop_index("ix_jobs_sort_summary", "jobs")
