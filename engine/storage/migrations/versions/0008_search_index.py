"""Trigram indexes for the search box: a search over a million jobs reads the few jobs that can match, not all.

A search matches the text anywhere in a job's parameters, result or error (``engine.storage.reads.JobQuery``), a
substring, so no ordinary index helps. On SQLite two FTS5 tables with the ``trigram`` tokenizer hold jobs' text as
its three-character pieces: ``jobs_search_parameters`` and ``jobs_search_outcome`` (result and error). They are
contentless (``content=''``: the text is not stored a second time) and keep no positions (``detail=none``): they only
say which jobs hold every trigram of the search text, and the search then tests those jobs' text itself, so an index
answer is never wrong, only narrowed.

They cover the jobs up to ``jobs_search_state.indexed_upto``; a search reads the newer ones in full. The worker adds
jobs in batches of hundreds once they are ten seconds or so old (``Ledger.index_search``), when most have ended:
indexing each job in its create's own transaction made every create write several more pages (syncing them cost a
create about 15 % more), and each job's end would have rewritten its entry. Triggers keep the covered jobs in step,
in the transaction that changes them: a result or error that changes (the worker's batched transitions), a delete
(its text is taken out), a job put back with a covered id (a restore from the trash). A contentless table must
never be told to forget text it was not given, hence the conditions.

An upgraded ledger starts with nothing covered: the worker indexes its jobs in the background (about a minute and a
half for a million), and searches read every row until then, as before.

On PostgreSQL the ``pg_trgm`` extension's GIN indexes on the same three texts serve ``ILIKE`` directly. Where the
extension is not installed or may not be created, no index is made and search reads every row, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PARAMETERS, OUTCOME = "jobs_search_parameters", "jobs_search_outcome"
_OUTCOME_OF = "{row}.result IS NOT NULL OR {row}.error IS NOT NULL"

_COVERED = "(SELECT indexed_upto FROM jobs_search_state)"
SQLITE_UP = [
    f"CREATE VIRTUAL TABLE {PARAMETERS} USING fts5(parameters, content='', tokenize='trigram', detail=none)",
    f"CREATE VIRTUAL TABLE {OUTCOME} USING fts5(result, error, content='', tokenize='trigram', detail=none)",
    "CREATE TABLE jobs_search_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL)",
    "INSERT INTO jobs_search_state (id, indexed_upto) VALUES (1, 0)",
    f"""CREATE TRIGGER jobs_search_insert AFTER INSERT ON jobs WHEN new.id <= {_COVERED} BEGIN
        INSERT INTO {PARAMETERS} (rowid, parameters) VALUES (new.id, new.parameters);
        INSERT INTO {OUTCOME} (rowid, result, error) SELECT new.id, new.result, new.error
            WHERE {_OUTCOME_OF.format(row="new")};
    END""",
    f"""CREATE TRIGGER jobs_search_update AFTER UPDATE OF result, error ON jobs
        WHEN (old.result IS NOT new.result OR old.error IS NOT new.error) AND old.id <= {_COVERED} BEGIN
        INSERT INTO {OUTCOME} ({OUTCOME}, rowid, result, error) SELECT 'delete', old.id, old.result, old.error
            WHERE {_OUTCOME_OF.format(row="old")};
        INSERT INTO {OUTCOME} (rowid, result, error) SELECT new.id, new.result, new.error
            WHERE {_OUTCOME_OF.format(row="new")};
    END""",
    f"""CREATE TRIGGER jobs_search_delete AFTER DELETE ON jobs WHEN old.id <= {_COVERED} BEGIN
        INSERT INTO {PARAMETERS} ({PARAMETERS}, rowid, parameters) VALUES ('delete', old.id, old.parameters);
        INSERT INTO {OUTCOME} ({OUTCOME}, rowid, result, error) SELECT 'delete', old.id, old.result, old.error
            WHERE {_OUTCOME_OF.format(row="old")};
    END""",
]
SQLITE_DOWN = [
    "DROP TRIGGER jobs_search_delete",
    "DROP TRIGGER jobs_search_update",
    "DROP TRIGGER jobs_search_insert",
    "DROP TABLE jobs_search_state",
    f"DROP TABLE {OUTCOME}",
    f"DROP TABLE {PARAMETERS}",
]

# (index, expression): the expressions ``reads._Contains`` compares on PostgreSQL, where an index on an expression
# serves only that same expression.
POSTGRESQL_INDEXES = [
    ("ix_jobs_search_parameters", "(CAST(parameters AS TEXT))"),
    ("ix_jobs_search_result", "(CAST(result AS TEXT))"),
    ("ix_jobs_search_error", "error"),
]


def _sqlite_has_trigrams(bind: Connection) -> bool:
    """Whether this SQLite has FTS5 and its ``trigram`` tokenizer (3.34 or later). Without them no index is made
    and searches read every row (``reads.LedgerReads.planned`` looks for ``jobs_search_state``). A ledger indexed
    here cannot then be written by a SQLite without FTS5: its triggers name the FTS5 tables."""
    version = tuple(int(part) for part in bind.exec_driver_sql("SELECT sqlite_version()").scalar_one().split("."))
    options = set(bind.exec_driver_sql("PRAGMA compile_options").scalars())
    return version >= (3, 34) and "ENABLE_FTS5" in options


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        if _sqlite_has_trigrams(bind):
            for statement in SQLITE_UP:
                op.execute(statement)
        return
    try:
        with bind.begin_nested():  # a failure here must not abort the migration's transaction
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DBAPIError:
        return  # not installed, or this role may not create it: searches read every row
    for name, expression in POSTGRESQL_INDEXES:
        op.execute(f"CREATE INDEX {name} ON jobs USING gin ({expression} gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        if op.get_bind().exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'jobs_search_state'").first():
            for statement in SQLITE_DOWN:
                op.execute(statement)
        return
    for name, _ in POSTGRESQL_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
