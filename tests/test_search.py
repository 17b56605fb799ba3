"""Search through the trigram index finds exactly what reading every row finds, on SQLite and on PostgreSQL.

The index (revision 0008) only narrows the rows a search tests; these tests hold it to that, on text chosen to
trip it: case in ASCII and beyond, accents, scripts without case, emoji, LIKE's own characters, quotes, short
terms, and jobs whose result and error came, changed and went (finished, failed, retried, deleted, restored).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Connection, insert, select, update
from test_ledger import ledger, make  # noqa: F401  (the fixture, on both databases)

from engine.storage.reads import SEARCH_TABLES, JobQuery, search_index_query
from engine.storage.repository import JOBS, Ledger
from engine.storage.rows import utcnow

TEXTS = [
    "Alice@Example.COM",
    "alice@example.com",
    "ÉCOLE élève Ünïcödé",
    "école ÉLÈVE ünïcödé",
    "Straße STRASSE",
    "İstanbul ıı",
    "日本語のテキスト",
    "emoji 🚀🚀 launch",
    "100% sure_thing",
    "100x sureXthing",
    "quote \"double\" and 'single'",
    "back\\slash path C:\\tmp\\x",
    "tab\there  two  spaces",
    "ab",
    "",
]
TERMS = [
    "alice", "ALICE", "Alice@", "example.com", "EXAMPLE.COM", "école", "ÉCOLE", "Élève", "ünïcödé", "ÜNÏCÖDÉ",
    "straße", "STRASSE", "strasse", "İstanbul", "istanbul", "ıı", "日本語", "テキスト", "本", "🚀🚀", "🚀",
    "100%", "100x", "0%", "%", "_", "e_t", "sure_", "x%y", '"double"', '"', "'single'", "\\slash", "C:\\tmp",
    "\\", "\t", "two  spaces", "o  s", "ab", "a", "b", "zzz", "recipients", "refused", "boom", "Boom", "ERROR:",
    "null", "user", "xyz123",
]  # fmt: skip


def populate(ledger: Ledger) -> list[int]:  # noqa: F811
    """Jobs with every text in parameters, in results and in errors, taken through each transition that writes
    them; a few rows inserted straight into the table, as a bulk load or a recovery does. Returns the ids of the
    jobs made for ``TEXTS``."""
    made: list[int] = []
    for i, text in enumerate(TEXTS):
        if i == len(TEXTS) // 2:
            ledger.index_search()  # the first half is in the index; the rest is newer, read in full
        job = make(ledger, parameters={"recipient": f"user{i}@example.com", "subject": text})
        made.append(job["id"])
        claimed = ledger.claim(job["id"], "w").job
        assert claimed is not None
        if i % 3 == 0:
            ledger.succeed(claimed, "w", {"recipients": [text], "refused": []})
        elif i % 3 == 1:
            ledger.fail(job["id"], "w", f"ERROR: {text}", None)
            if i % 2:
                ledger.retry(job["id"])  # the error is cleared: it must no longer be found
        else:
            ledger.fail(job["id"], "w", f"boom {text}", None)
            ledger.retry(job["id"])
            again = ledger.claim(job["id"], "w").job
            assert again is not None
            ledger.succeed(again, "w", {"note": text.upper()})
    gone = make(ledger, parameters={"subject": "deleted for good xyz123"})
    back = make(ledger, parameters={"subject": "restored Alice 🚀🚀"})
    ledger.index_search()  # both in the index when deleted: taken out, and one put back
    ledger.delete(gone["id"])
    ledger.delete(back["id"], batch="b1")
    ledger.restore(batch="b1", outbox=lambda *_: None)
    newer = make(ledger, parameters={"subject": "newer, deleted before it was indexed xyz123"})
    ledger.delete(newer["id"], batch="b2")
    with ledger.engine.begin() as conn:
        rows: list[dict[str, Any]] = [
            {"job_type": "upload_file", "parameters": {"path": f"/data/{text}"}, "status": "failed", "priority": 5,
             "max_retries": 0, "attempts": 1, "schedule_type": "immediate", "created_at": utcnow(),
             "error": f"Upload refused: {text}"}
            for text in TEXTS[::2]
        ]  # fmt: skip
        conn.execute(insert(JOBS), rows)
        # a change made outside the ledger's transitions is followed too
        conn.execute(update(JOBS).where(JOBS.c.id == made[0]).values(error="changed by hand ERROR: Boom"))
    return made


def index_intact(ledger: Ledger) -> None:  # noqa: F811
    """FTS5's own check of its tables (a contentless table told to forget text it never had fails it)."""
    if ledger.engine.dialect.name == "sqlite":
        with ledger.engine.begin() as conn:
            for name in SEARCH_TABLES:
                conn.exec_driver_sql(f"INSERT INTO {name} ({name}) VALUES ('integrity-check')")


def found(conn: Connection, where: ColumnElement[bool]) -> list[int]:
    return list(conn.execute(select(JOBS.c.id).where(where).order_by(JOBS.c.id)).scalars())


def scan_only(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")


def index_only(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


@pytest.mark.parametrize("indexed", ["partly", "all"])
def test_a_search_through_the_index_finds_what_reading_every_row_finds(
    ledger: Ledger,  # noqa: F811
    indexed: str,
) -> None:
    populate(ledger)
    if indexed == "all" and ledger.engine.dialect.name == "sqlite":
        assert ledger.index_search() > 0 and ledger.index_search() == 0
    index_intact(ledger)
    sqlite = ledger.engine.dialect.name == "sqlite"
    narrowed = 0
    for term in TERMS:
        with ledger.engine.begin() as conn:
            scan_only(conn)
            expected = found(conn, JobQuery(search=term).where())
        with ledger.engine.begin() as conn:
            index_only(conn)
            if sqlite and search_index_query(term) is not None:
                planned = ledger.planned(conn, JobQuery(search=term))
                assert planned.search_indexed, term  # a small ledger: the index is always worth asking
                indexed = found(conn, planned.where())
                narrowed += 1
            else:
                indexed = found(conn, JobQuery(search=term).where())
        assert indexed == expected, term
        jobs, total = ledger.list(search=term, sort="id", descending=False, limit=1000)
        assert [job["id"] for job in jobs] == expected and total == len(expected), term
        assert ledger.matching(JobQuery(search=term)) == len(expected), term
        assert sum(ledger.status_counts(JobQuery(search=term)).values()) == len(expected), term
    assert not sqlite or narrowed > len(TERMS) // 2


def test_what_the_search_finds(ledger: Ledger) -> None:  # noqa: F811
    """The search's meaning, pinned: a substring of parameters, result or error; ASCII letters in any case; the
    text taken literally (``%`` and ``_`` included); a cleared error no longer found; deleted jobs not found."""
    populate(ledger)

    def subjects(term: str) -> set[str]:
        jobs = ledger.list(search=term, limit=1000)[0]
        return {job["parameters"].get("subject") or job["parameters"]["path"] for job in jobs}

    assert subjects("ALICE@EXAMPLE.COM") == subjects("alice@example.com") == {TEXTS[0], TEXTS[1], "/data/" + TEXTS[0]}
    assert subjects("100%") == {TEXTS[8], "/data/" + TEXTS[8]} and subjects("x%y") == set()
    assert subjects("e_t") == {TEXTS[8], "/data/" + TEXTS[8]}
    assert subjects("xyz123") == set()  # deleted for good
    assert subjects("restored alice") == {"restored Alice 🚀🚀"}
    # failed and not retried (1 and 7 were: their errors are cleared), and the one changed by hand
    assert subjects("ERROR: ") == {TEXTS[i] for i in (0, 4, 10)}
    if ledger.engine.dialect.name == "sqlite":  # SQLite's LIKE folds ASCII letters only
        assert subjects("ÉCOLE") == subjects("école") == {TEXTS[3]}  # the text is lowered first: "école"
    else:
        assert subjects("ÉCOLE") == subjects("école") == {TEXTS[2], TEXTS[3], "/data/" + TEXTS[2]}


def test_the_index_query_quotes_every_trigram_and_skips_short_text() -> None:
    assert search_index_query("ab") is None and search_index_query("") is None
    assert search_index_query('A"bc') == '"a""b" """bc"'
    assert search_index_query("aaaa") == '"aaa"'  # each trigram once


@pytest.mark.parametrize("term", ["user3@", "ERROR: ab", "🚀🚀"])
def test_a_bulk_action_on_a_search_takes_the_jobs_it_lists(ledger: Ledger, term: str) -> None:  # noqa: F811
    populate(ledger)
    listed = {job["id"] for job in ledger.list(search=term, status=["failed"], limit=1000)[0]}
    done = ledger.act_on(JobQuery(search=term, statuses=("failed",)), "retry")
    assert {job["id"] for job, _ in done} == listed


def test_a_rare_search_is_answered_from_the_index(ledger: Ledger) -> None:  # noqa: F811
    """SQLite looks the text up in its FTS5 tables; PostgreSQL's planner can use pg_trgm's indexes for ILIKE."""
    populate(ledger)
    with ledger.engine.begin() as conn:
        index_only(conn)
        query = ledger.planned(conn, JobQuery(search="user3@"))
        stmt = select(JOBS.c.id).where(query.where()).compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}"
                                                                      if conn.dialect.name == "sqlite"
                                                                      else f"EXPLAIN {stmt}"))  # fmt: skip
    if ledger.engine.dialect.name == "sqlite":
        # the jobs fetched by id, not read in full and tested against the ids
        assert plan.startswith("SEARCH jobs USING INTEGER PRIMARY KEY"), plan
        assert "jobs_search_parameters" in plan and "jobs_search_outcome" in plan
    else:
        assert all(f"ix_jobs_search_{column}" in plan for column in ("parameters", "result", "error")), plan


def test_new_jobs_are_indexed_in_batches(ledger: Ledger) -> None:  # noqa: F811
    with ledger.engine.begin() as conn:
        conn.execute(insert(JOBS), [
            {"job_type": "send_email", "parameters": {"recipient": f"bulk{i}@example.com"}, "status": "pending",
             "priority": 5, "max_retries": 0, "attempts": 0, "schedule_type": "immediate", "created_at": utcnow()}
            for i in range(1200)
        ])  # fmt: skip
    if ledger.engine.dialect.name != "sqlite":
        assert ledger.index_search() == 0  # PostgreSQL keeps its own indexes
        return
    assert [ledger.index_search(500) for _ in range(4)] == [500, 500, 200, 0]
    index_intact(ledger)
    with ledger.engine.connect() as conn:
        covered = conn.exec_driver_sql("SELECT indexed_upto FROM jobs_search_state").scalar_one()
        assert covered == ledger.max_id()
    assert ledger.list(search="BULK1199@")[1] == 1 and ledger.list(search="bulk11")[1] == 111


def test_with_nothing_new_indexing_does_not_wait_for_the_write_lock(
    ledger: Ledger,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An idle worker asks every few seconds: with nothing to add it only reads, even while another process writes."""
    if ledger.sqlite_file is None:
        pytest.skip("PostgreSQL keeps its own indexes")
    ledger.index_search()
    monkeypatch.setenv("JOBDECK_LOCK_WAIT_S", "1")  # a write would give up, with an error, after a second
    with contextlib.closing(sqlite3.connect(ledger.sqlite_file, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        assert ledger.index_search() == 0
        other.execute("ROLLBACK")


def test_the_worker_indexes_new_jobs(ops: Any, worker_factory: Any) -> None:
    """Jobs created while a worker runs join the search index once they are a pause old (``SEARCH_INDEX_PAUSE_S``);
    until then a search reads them in full."""
    worker_factory()
    for i in range(5):
        ops.create(
            "send_email",
            {"recipient": f"late{i}@example.com", "subject": "s", "body": "b"},
            scheduled_time="2099-01-01T00:00:00Z",
        )
    newest = ops.ledger.max_id()
    assert ops.ledger.list(search="late3@")[1] == 1
    deadline = time.monotonic() + 60
    while True:
        with ops.ledger.engine.connect() as conn:
            if conn.exec_driver_sql("SELECT indexed_upto FROM jobs_search_state").scalar_one() >= newest:
                break
        assert time.monotonic() < deadline, "the worker did not index the new jobs"
        time.sleep(0.1)
    assert ops.ledger.list(search="late3@")[1] == 1


def test_a_sqlite_without_fts5_searches_by_reading_every_row(tmp_path: Path) -> None:
    """Revision 0008 makes no index where SQLite lacks FTS5 or its trigram tokenizer (as if its statements were
    never run): searches, creates and deletes work the same, and there is nothing to index."""
    import importlib

    revision = importlib.import_module("engine.storage.migrations.versions.0008_search_index")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = Ledger(url)
    with first.engine.begin() as conn:
        for statement in revision.SQLITE_DOWN:
            conn.exec_driver_sql(statement)
    first.close()
    plain = Ledger(url)
    try:
        made = populate(plain)
        assert plain.index_search() == 0
        with plain.engine.connect() as conn:
            assert not plain.has_search_index(conn)
            assert not plain.planned(conn, JobQuery(search="alice")).search_indexed
        assert plain.list(search="ALICE@EXAMPLE.COM")[1] == 3 and len(made) == len(TEXTS)
    finally:
        plain.close()
