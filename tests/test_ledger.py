"""The ledger's transitions, on SQLite and on PostgreSQL: each writes one event, guards its source state."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, update

from engine.errors import InvalidTransition, NotFound
from engine.storage.reads import JobQuery
from engine.storage.repository import EVENT_CHUNK, EVENTS, JOBS, Ledger, job_to_dict
from engine.storage.status import JobStatus


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:  # the postgres database is shared by the session: start clean
        conn.execute(EVENTS.delete())
        conn.execute(JOBS.delete())
    yield ledger
    ledger.close()


def make(ledger: Ledger, **kw: object) -> dict:
    args = {
        "job_type": "send_email",
        "parameters": {"recipient": "a@example.com"},
        "priority": 5,
        "max_retries": 2,
        "scheduled_time": None,
    }
    args.update(kw)
    return ledger.create(**args)  # type: ignore[arg-type]


def event_count(ledger: Ledger, job_id: int) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.job_id == job_id)).scalar_one()


def test_create_writes_job_and_event(ledger: Ledger) -> None:
    job = make(ledger)
    assert job["status"] == "pending" and job["schedule_type"] == "immediate" and job["attempts"] == 0
    history = ledger.history(job["id"])
    assert [h["type"] for h in history] == ["created"]
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = make(ledger, scheduled_time=later)
    assert scheduled["status"] == "scheduled"
    assert datetime.fromisoformat(scheduled["scheduled_time"]) == later.replace(microsecond=later.microsecond)
    for made in (job, scheduled):  # what create returns (and announces) is what the row reads back as
        assert made == job_to_dict(ledger.get_row(made["id"]))
        assert [e["job"] for e in ledger.events_since(0, 100) if e["job_id"] == made["id"]] == [made]


def test_full_success_path_and_one_event_per_transition(ledger: Ledger) -> None:
    job = make(ledger)
    claim = ledger.claim(job["id"], "w1")
    assert claim.job is not None and claim.job["status"] == "running" and claim.job["attempts"] == 1
    assert ledger.claim(job["id"], "w2").job is None  # a second claim loses
    done = ledger.succeed(claim.job, "w1", {"ok": True})
    assert done is not None and done["status"] == "succeeded" and done["result"] == {"ok": True}
    assert [h["type"] for h in ledger.history(job["id"])] == ["created", "started", "succeeded"]


def test_finish_requires_the_lease_holder(ledger: Ledger) -> None:
    job = make(ledger)
    running = ledger.claim(job["id"], "w1").job
    assert running is not None
    assert ledger.succeed(running, "someone-else", None) is None
    assert ledger.get(job["id"])["status"] == "running"


def test_settle_records_successes_then_claims_in_one_transaction(ledger: Ledger) -> None:
    """The worker's dispatcher: jobs that succeeded, then jobs to start, one commit, one listener call in order."""
    running = [ledger.claim(make(ledger)["id"], "w1").job for _ in range(2)]
    lost = ledger.claim(make(ledger)["id"], "w2").job  # held by another worker: its success is not ours to record
    assert running[0] and running[1] and lost
    later = make(ledger, scheduled_time=datetime.now(UTC) + timedelta(hours=1))
    waiting = [make(ledger) for _ in range(2)]
    heard: list[list[dict]] = []
    ledger.add_listener(heard.append)
    succeeded = [(running[0], {"n": 0}), (running[1], None), (lost, {"n": 2})]
    done, claims = ledger.settle("w1", succeeded, [waiting[0]["id"], later["id"], waiting[1]["id"]])
    assert [d["status"] if d else None for d in done] == ["succeeded", "succeeded", None]
    assert done[0] is not None and done[0]["result"] == {"n": 0}
    assert [c.job["status"] if c.job else None for c in claims] == ["running", None, "running"]
    assert claims[1].not_before is not None  # the scheduled job told its time
    assert ledger.get(lost["id"])["status"] == "running"
    assert len(heard) == 1
    for job, result in succeeded[:2]:  # what was announced is exactly what the ledger now holds and replays
        announced = next(e for e in heard[0] if e["job_id"] == job["id"])
        assert announced["job"] == job_to_dict(ledger.get_row(job["id"]))
        assert announced["job"]["result"] == result and announced["job"]["status"] == "succeeded"
        assert ledger.events_since(announced["seq"] - 1, 1)[0] == announced
    assert [(e["job_id"], e["type"]) for e in heard[0]] == [
        (running[0]["id"], "succeeded"),
        (running[1]["id"], "succeeded"),
        (waiting[0]["id"], "started"),
        (waiting[1]["id"], "started"),
    ]
    assert [e["seq"] for e in heard[0]] == sorted(e["seq"] for e in heard[0])


def test_one_row_inserts_announce_the_keys_the_database_gave(ledger: Ledger) -> None:
    """A create's job id and the seq of each one-row event come from the cursor's lastrowid on SQLite and from
    RETURNING on PostgreSQL: what is announced and returned must be what was stored, in a shared transaction too."""
    heard: list[dict] = []
    ledger.add_listener(heard.extend)
    jobs = [make(ledger) for _ in range(3)]
    canceled = ledger.cancel(jobs.pop(1)["id"])
    with ThreadPoolExecutor(4) as pool:  # writers that may share one transaction (group commit)
        jobs += pool.map(lambda _: make(ledger), range(8))
    assert len({job["id"] for job in jobs} | {canceled["id"]}) == len(jobs) + 1
    for job in [*jobs, canceled]:
        assert job == job_to_dict(ledger.get_row(job["id"]))
    assert [(e["seq"], e["job_id"], e["type"]) for e in heard] == [
        (e["seq"], e["job_id"], e["type"]) for e in ledger.events_since(0, 1000)
    ]
    assert [e["type"] for e in heard].count("canceled") == 1 and len(heard) == len(jobs) + 2  # and its create


def test_settle_in_several_statements_and_a_duplicate_message(ledger: Ledger) -> None:
    """More jobs than one multi-row statement holds, and one id twice (a duplicate message): claimed once."""
    jobs = [make(ledger) for _ in range(EVENT_CHUNK + 3)]
    ids = [job["id"] for job in jobs]
    running = [c.job for c in ledger.settle("w", [], ids)[1]]
    assert all(job is not None and job["status"] == "running" for job in running)
    more = [make(ledger)["id"] for _ in range(2)]
    done, claims = ledger.settle("w", [(job, {"i": i}) for i, job in enumerate(running)], [more[0], more[0], more[1]])
    assert [d["result"] if d else None for d in done] == [{"i": i} for i in range(len(running))]
    assert [c.job["id"] if c.job else None for c in claims] == [more[0], None, more[1]]
    for job_id in ids + more:  # every announced snapshot is what its row held then, in seq order, none twice
        history = [e for e in ledger.events_since(0, 1000) if e["job_id"] == job_id]
        assert [e["type"] for e in history] == ["created", "started"] + (["succeeded"] if job_id in ids else [])
        assert history[-1]["job"] == job_to_dict(ledger.get_row(job_id))
    seqs = [e["seq"] for e in ledger.events_since(0, 1000)]
    assert seqs == sorted(set(seqs))


def test_every_change_to_a_job_bumps_its_version(ledger: Ledger) -> None:
    """Claims are worked out from rows read before the write lock and guarded on ``version``: a change that did not
    bump it would let a claim go ahead on a stale row."""
    job = make(ledger)
    seen = [ledger.get_row(job["id"]).version]

    def changed() -> None:
        seen.append(ledger.get_row(job["id"]).version)
        assert seen[-1] > seen[-2], seen

    ledger.claim(job["id"], "w")
    changed()
    ledger.heartbeat("w")
    changed()
    ledger.save_checkpoint(job["id"], {"part": 1})
    changed()
    ledger.retry_later(job["id"], "w", "boom", None, datetime.now(UTC) - timedelta(seconds=1))
    changed()
    running = ledger.claim(job["id"], "w").job
    changed()
    ledger.fail(job["id"], "w", "boom", None)
    changed()
    ledger.retry(job["id"])
    changed()
    ledger.cancel(job["id"])
    changed()
    ledger.retry_all_failed()  # not failed: untouched
    assert ledger.get_row(job["id"]).version == seen[-1]
    ledger.retry(job["id"])
    changed()
    ledger.clear_staged(job["id"])
    changed()
    running = ledger.claim(job["id"], "w").job
    changed()
    assert running is not None and ledger.succeed(running, "w", None) is not None
    changed()
    ledger.claim(make(ledger)["id"], "gone")
    (lost,) = ledger.lost_leases(0)
    ledger.lease_lost(lost, JobStatus.FAILED, error="worker lost")
    later = make(ledger, scheduled_time=datetime.now(UTC) + timedelta(hours=1))
    before = ledger.get_row(later["id"]).version
    ledger.run_now(later["id"])
    assert ledger.get_row(later["id"]).version > before


def test_a_claim_worked_out_from_a_row_that_changed_since_is_decided_again(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker reads the rows of the jobs it is about to claim before it takes the write lock. If one changes in
    between, the version guard misses and the claim is decided again from the row as it is."""
    canceled, cycled, untouched = make(ledger), make(ledger), make(ledger)
    ids = [canceled["id"], cycled["id"], untouched["id"]]
    ledger.claim(cycled["id"], "w")
    ledger.release(cycled["id"], "w")  # pending, no attempt counted
    stale = ledger._rows_for_claim(ids)
    ledger.cancel(canceled["id"])
    ledger.claim(cycled["id"], "w")  # another attempt, which failed: claimable again, but not as it was read
    ledger.retry_later(cycled["id"], "w", "boom", None, datetime.now(UTC) - timedelta(seconds=1))
    monkeypatch.setattr(ledger, "_rows_for_claim", lambda _ids: stale)
    heard: list[list[dict]] = []
    ledger.add_listener(heard.append)
    _, claims = ledger.settle("w", [], ids)
    assert claims[0].job is None and ledger.get(canceled["id"])["status"] == "canceled"
    for claim, job_id in zip(claims[1:], ids[1:], strict=True):
        assert claim.job is not None and claim.job == job_to_dict(ledger.get_row(job_id))
    assert claims[1].job is not None and claims[1].job["attempts"] == 2 and claims[1].job["error"] == "boom"
    assert [(e["job_id"], e["type"]) for e in heard[0]] == [(cycled["id"], "started"), (untouched["id"], "started")]
    assert [e["job"] for e in heard[0]] == [claims[1].job, claims[2].job]


def migrated(url: str, revision: str) -> Engine:
    """An engine on a ledger made by the migrations up to ``revision`` only (as an earlier version left it)."""
    from alembic import command

    from engine.storage.database import alembic_config

    engine = create_engine(url)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return engine


OLD_JOB = (
    "INSERT INTO jobs (job_type, parameters, status, priority, max_retries, attempts, schedule_type, created_at)"
    " VALUES ('send_email', '{}', 'pending', 5, 3, 0, 'immediate', '2026-11-01 10:00:00.000000')"
)


def test_a_ledger_from_before_the_row_version_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = migrated(url, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(OLD_JOB)
    engine.dispose()
    ledger = Ledger(url)
    try:
        assert ledger.get_row(1).version == 0
        claim = ledger.claim(1, "w")
        assert claim.job is not None and claim.job["attempts"] == 1 and ledger.get_row(1).version == 1
    finally:
        ledger.close()


def test_deleting_the_newest_job_never_lends_its_id_to_the_next(ledger: Ledger) -> None:
    make(ledger)
    newest = make(ledger)
    ledger.delete(newest["id"])
    following = make(ledger)
    assert following["id"] > newest["id"]
    assert [step["type"] for step in ledger.history(following["id"])] == ["created"]  # not the deleted job's too


def test_an_older_ledger_is_upgraded_to_ids_above_every_id_it_mentions(tmp_path: Path) -> None:
    """Revision 0005 (AUTOINCREMENT on SQLite): a ledger whose newest job was deleted, only its events naming it."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = migrated(url, "0004")
    index_sql = (  # those of later revisions left out
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name NOT IN ('job_trash', 'schedules')"
        " AND name NOT IN ('ix_jobs_schedule_planned', 'ix_jobs_sort_summary')"
    )
    with engine.begin() as conn:
        for job_id in (1, 2, 3):
            conn.exec_driver_sql(OLD_JOB)
            conn.exec_driver_sql(
                "INSERT INTO job_events (job_id, type, payload, at) VALUES (?, 'created', '{}', '2026-11-01 10:00')",
                (job_id,),
            )
        conn.exec_driver_sql("DELETE FROM jobs WHERE id = 3")
        indexes = set(conn.exec_driver_sql(index_sql).all())
    ledger = Ledger(url)
    try:
        assert make(ledger)["id"] == 4
    finally:
        ledger.close()
    with engine.connect() as conn:  # every index kept, the expression indexes that reflection skips included
        assert set(conn.exec_driver_sql(index_sql).all()) == indexes
    engine.dispose()


def test_the_leaner_schema_keeps_every_event_and_never_reuses_a_seq(tmp_path: Path) -> None:
    """Revision 0003 rebuilds job_events without AUTOINCREMENT (SQLite) and merges the status indexes."""
    from alembic import command
    from sqlalchemy import create_engine

    from engine.storage.database import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)

    def migrate(revision: str, direction: str = "upgrade") -> None:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            getattr(command, direction)(config, revision)

    def schema() -> tuple[set[str], str]:
        with engine.connect() as conn:
            indexes = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
            events = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'job_events'").scalar_one()
        return {i for i in indexes if i.startswith("ix_")}, events

    migrate("0002")
    with engine.begin() as conn:  # (a Ledger would upgrade the file to the newest revision)
        for job_id in (1, 2, 3):
            conn.exec_driver_sql(
                "INSERT INTO jobs (job_type, parameters, status, priority, max_retries, attempts, schedule_type,"
                " created_at) VALUES ('send_email', '{}', 'pending', 5, 3, 0, 'immediate', '2026-11-01 10:00:00')"
            )
            for kind in ("created", "canceled"):
                conn.exec_driver_sql(
                    "INSERT INTO job_events (job_id, type, payload, at) VALUES (?, ?, ?, '2026-11-01 10:00:00')",
                    (job_id, kind, f'{{"job": {{"id": {job_id}}}}}'),
                )
        conn.exec_driver_sql("UPDATE jobs SET status = 'canceled'")
        conn.exec_driver_sql("DELETE FROM jobs WHERE id = 1")  # its events stay: the log is append-only
    assert "AUTOINCREMENT" in schema()[1]

    migrate("head")
    indexes, events = schema()
    sorts = {f"ix_jobs_sort_{key}" for key in ("type", "status", "priority", "attempts", "when", "created",
                                                "duration", "outcome", "summary")}  # fmt: skip
    assert indexes == {"ix_jobs_status_type", "ix_job_events_job_id", "ix_job_trash_deleted_at", "ix_job_trash_batch",
                       "ix_schedules_next_run_at", "ix_jobs_schedule_planned", *sorts}  # fmt: skip
    assert "AUTOINCREMENT" not in events
    ledger = Ledger(url)
    try:
        before = ledger.events_since(0)
        assert [(e["seq"], e["job_id"], e["job"]) for e in before] == [
            (n + 1, n // 2 + 1, {"id": n // 2 + 1}) for n in range(6)
        ]
        job = make(ledger)
        assert job["id"] == 4 and [e["seq"] for e in ledger.events_since(6)] == [7]
        assert ledger.count(JobStatus.CANCELED) == 2 and ledger.list(job_type="send_email")[1] == 3
        assert ledger.counts()[1] == {"send_email": {"canceled": 2, "pending": 1}}
    finally:
        ledger.close()

    migrate("0002", "downgrade")
    indexes, events = schema()
    assert indexes == {"ix_jobs_status", "ix_jobs_type_status", "ix_jobs_created_at", "ix_job_events_job_id",
                       "ix_job_events_type_at"}  # fmt: skip
    assert "AUTOINCREMENT" in events
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM job_events").scalar_one() == len(before) + 1
    engine.dispose()


def test_finished_events_are_found_by_seq_though_their_times_may_trail(ledger: Ledger) -> None:
    """A transition's time is taken before it waits for the lock, so seq order is time order only within a slack;
    the statistics look events up by seq (no index on their time) and must still find each one."""
    from engine.storage.reads import EVENT_TIME_SLACK

    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    offsets = [0, 5, 3, 30, 10, 31, 60, 45, 61, 120, 90, 121, 125, 600, 570, 601, 602, 3600, 3561, 3605]
    kinds = ["succeeded", "failed", "started", "succeeded"]
    rows = [
        {"job_id": n + 1, "type": kinds[n % 4], "payload": {"job": {}}, "at": start + timedelta(seconds=s)}
        for n, s in enumerate(offsets)
    ]
    assert all(rows[n]["at"] - max(r["at"] for r in rows[: n + 1]) > -EVENT_TIME_SLACK for n in range(len(rows)))
    with ledger.engine.begin() as conn:
        conn.execute(EVENTS.insert(), rows)
    assert ledger.finished_events_since(start) == [(r["type"], r["at"]) for r in rows if r["type"] != "started"]
    for cut in [0, 4, 6, 30, 31, 44, 46, 61, 100, 122, 580, 601, 3560, 3562, 3605, 3606]:
        since = start + timedelta(seconds=cut)
        expected = [(r["type"], r["at"]) for r in rows if r["type"] != "started" and r["at"] >= since]
        assert ledger.finished_events_since(since) == expected, cut


def test_json_columns_keep_what_the_standard_library_kept(ledger: Ledger) -> None:
    """orjson writes the JSON; what it cannot (integers beyond 64 bits) falls back, and all of it reads back."""
    from engine.storage import json_text

    values = {"big": 2**70, "keys": {1: "one"}, "text": "é ☃", "nested": [1.5, None, True, {"a": []}]}
    assert json.loads(json_text.dumps(values)) == {**values, "keys": {"1": "one"}}
    assert json_text.dumps({"nan": float("nan")}) == '{"nan":null}'  # NaN is not JSON; PostgreSQL refuses it
    job = make(ledger, parameters=values)
    assert job["parameters"] == ledger.get(job["id"])["parameters"] == {**values, "keys": {"1": "one"}}
    assert [e["job"] for e in ledger.events_since(0) if e["job_id"] == job["id"]] == [job]


def test_a_new_ledger_file_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    from engine.storage.database import SQLITE_PAGE_SIZE

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # a file an earlier version made: SQLite's default pages, in WAL mode
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        ledger = Ledger(f"sqlite:///{path}")
        try:
            job = make(ledger)
            assert ledger.get(job["id"])["status"] == "pending"
        finally:
            ledger.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA page_size").fetchone()[0] == size
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retry_later_then_exhausted(ledger: Ledger) -> None:
    job = make(ledger, max_retries=1)
    ledger.claim(job["id"], "w1")
    soon = datetime.now(UTC) - timedelta(seconds=1)
    retrying = ledger.retry_later(job["id"], "w1", "boom", None, soon)
    assert retrying is not None and retrying["status"] == "retrying" and retrying["next_attempt_at"]
    second = ledger.claim(job["id"], "w1")
    assert second.job is not None and second.job["attempts"] == 2
    failed = ledger.fail(job["id"], "w1", "boom again", "tb")
    assert failed is not None and failed["status"] == "failed" and failed["error"] == "boom again"


def test_early_claims_are_refused_with_their_due_time(ledger: Ledger) -> None:
    at = datetime.now(UTC) + timedelta(minutes=5)
    job = make(ledger, scheduled_time=at)
    claim = ledger.claim(job["id"], "w1")
    assert claim.job is None and claim.not_before is not None
    assert abs((claim.not_before - at).total_seconds()) < 0.001
    assert ledger.run_now(job["id"])["status"] == "pending"
    assert ledger.claim(job["id"], "w1").job is not None


def test_run_now_starts_a_retrying_jobs_next_attempt_without_its_wait(ledger: Ledger) -> None:
    job = make(ledger)
    ledger.claim(job["id"], "w1")
    later = datetime.now(UTC) + timedelta(minutes=10)
    ledger.retry_later(job["id"], "w1", "boom", None, later)
    assert ledger.claim(job["id"], "w1").job is None  # waiting for its backoff
    now = ledger.run_now(job["id"])
    assert now["status"] == "pending" and now["next_attempt_at"] is None and now["attempts"] == 1
    claimed = ledger.claim(job["id"], "w1").job
    assert claimed is not None and claimed["attempts"] == 2  # the attempt so far still counts
    assert [e["type"] for e in ledger.history(job["id"])][-2:] == ["run_now", "started"]


def test_operator_transitions_and_their_errors(ledger: Ledger) -> None:
    job = make(ledger)
    canceled = ledger.cancel(job["id"])
    assert canceled["status"] == "canceled"
    with pytest.raises(
        InvalidTransition, match="canceled; cancel needs a job that is pending, scheduled, retrying or running"
    ):
        ledger.cancel(job["id"])
    retried = ledger.retry(job["id"])
    assert retried["status"] == "pending" and retried["attempts"] == 0
    ledger.claim(job["id"], "w1")
    with pytest.raises(InvalidTransition, match="running; delete"):
        ledger.delete(job["id"])
    with pytest.raises(InvalidTransition, match="running; run now needs a job that is scheduled or retrying"):
        ledger.run_now(job["id"])
    ledger.fail(job["id"], "w1", "x", None)
    deleted, _ = ledger.delete(job["id"])
    assert deleted["id"] == job["id"]
    with pytest.raises(NotFound):
        ledger.get(job["id"])
    # the history stays in the append-only log, ending with the deletion
    assert ledger.events_since(0)[-1]["type"] == "deleted"


def test_a_running_job_is_asked_to_stop_and_only_its_worker_cancels_it(ledger: Ledger) -> None:
    job = make(ledger)
    ledger.claim(job["id"], "w1")
    asked = ledger.cancel(job["id"])
    assert asked["status"] == "running" and asked["cancel_requested_at"] is not None
    assert ledger.cancel(job["id"]) == asked  # asking again changes nothing
    assert [e["type"] for e in ledger.history(job["id"])] == ["created", "started", "cancel_requested"]
    assert ledger.cancel_requests("w1") == [job["id"]] and ledger.cancel_requests("w2") == []
    assert ledger.cancel_running(job["id"], "w2") is None  # not the worker holding it
    canceled = ledger.cancel_running(job["id"], "w1")
    assert canceled is not None and canceled["status"] == "canceled" and canceled["finished_at"] is not None
    assert ledger.cancel_requests("w1") == []
    retried = ledger.retry(job["id"])
    assert retried["status"] == "pending" and retried["cancel_requested_at"] is None  # a retry clears the request


def test_a_job_asked_to_stop_is_canceled_not_requeued_when_its_worker_releases_it(ledger: Ledger) -> None:
    """A shutdown past its grace period releases the jobs still running back to the queue, except those an operator
    asked to stop: they are canceled, or they would run again."""
    asked, other = make(ledger), make(ledger)
    for job in (asked, other):
        ledger.claim(job["id"], "w1")
    ledger.cancel(asked["id"])
    released = [ledger.release(job["id"], "w1") for job in (asked, other)]
    assert [(j or {}).get("status") for j in released] == ["canceled", "pending"]
    assert (
        ledger.history(asked["id"])[-1]["type"] == "canceled" and ledger.history(other["id"])[-1]["type"] == "released"
    )


def test_a_bulk_cancel_cancels_the_waiting_jobs_and_asks_the_running_ones_to_stop(ledger: Ledger) -> None:
    waiting, running, done = make(ledger), make(ledger), make(ledger)
    ledger.claim(running["id"], "w1")
    ledger.claim(done["id"], "w1")
    ledger.fail(done["id"], "w1", "x", None)
    acted = ledger.act_on(JobQuery(ids=(waiting["id"], running["id"], done["id"])), "cancel")
    assert [(job["id"], job["status"], job["cancel_requested_at"] is not None) for job, _ in acted] == [
        (waiting["id"], "canceled", False),
        (running["id"], "running", True),
    ]
    assert ledger.history(running["id"])[-1]["type"] == "cancel_requested"
    assert ledger.act_on(JobQuery(ids=(running["id"],)), "cancel") == []  # asked already


def test_retry_all_failed_keeps_history(ledger: Ledger) -> None:
    ids = []
    for _ in range(3):
        job = make(ledger, max_retries=0)
        ledger.claim(job["id"], "w")
        ledger.fail(job["id"], "w", "no", None)
        ids.append(job["id"])
    other = make(ledger)
    retried = ledger.retry_all_failed()
    assert [j["id"] for j in retried] == ids
    assert all(j["status"] == "pending" and j["error"] is None for j in retried)
    assert ledger.get(other["id"])["status"] == "pending"
    assert event_count(ledger, ids[0]) == 4  # created, started, failed, retried


def test_a_lapsed_lease_is_lost_and_a_renewed_one_is_left_alone(ledger: Ledger) -> None:
    """``lease_lost`` acts on the row as ``lost_leases`` read it: a lease renewed since then is not taken."""
    job = make(ledger, max_retries=1)
    ledger.claim(job["id"], "dead-worker")
    with ledger.engine.begin() as conn:
        conn.execute(
            update(JOBS).where(JOBS.c.id == job["id"]).values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
        )
    (lost,) = ledger.lost_leases(lease_s=30)
    assert ledger.heartbeat("dead-worker") == 1  # it was alive after all
    assert ledger.lease_lost(lost, JobStatus.RETRYING, error="worker lost", next_attempt_at=datetime.now(UTC)) is None
    assert ledger.get(job["id"])["status"] == "running" and ledger.lost_leases(lease_s=30) == []


def test_fresh_lease_is_not_recovered_unless_its_worker_is_known_dead(ledger: Ledger) -> None:
    job = make(ledger)
    ledger.claim(job["id"], "old-incarnation")
    other = make(ledger)
    ledger.claim(other["id"], "alive")
    assert ledger.lost_leases(lease_s=30) == []
    assert [row["id"] for row in ledger.lost_leases(lease_s=30, dead_workers={"old-incarnation"})] == [job["id"]]


def test_release_does_not_count_the_attempt(ledger: Ledger) -> None:
    job = make(ledger)
    ledger.claim(job["id"], "w")
    released = ledger.release(job["id"], "w")
    assert released is not None and released["status"] == "pending" and released["attempts"] == 0


def test_seq_strictly_increases_under_concurrent_writers(ledger: Ledger) -> None:
    """Replay from any seq must give exactly what followed: commit order == seq order."""
    seen: list[int] = []
    lock = threading.Lock()

    def listener(events: list[dict]) -> None:
        with lock:
            seen.extend(e["seq"] for e in events)

    ledger.add_listener(listener)

    def writer() -> None:
        for _ in range(25):
            running = ledger.claim(make(ledger)["id"], "w").job
            assert running is not None
            ledger.succeed(running, "w", None)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [e["seq"] for e in ledger.events_since(0, limit=10_000)]
    assert len(stored) == 300 and stored == sorted(stored) and len(set(stored)) == 300
    assert sorted(seen) == stored
    # every suffix of the log replays exactly
    for cut in (0, 1, 150, 299):
        assert [e["seq"] for e in ledger.events_since(stored[cut], limit=10_000)] == stored[cut + 1 :]


def test_a_broken_listener_never_breaks_a_transition(ledger: Ledger) -> None:
    def broken(_events: list[dict]) -> None:
        raise RuntimeError("subscriber bug")

    ledger.add_listener(broken)
    job = make(ledger)
    assert ledger.get(job["id"])["status"] == JobStatus.PENDING.value


def test_list_filters_search_and_paging(ledger: Ledger) -> None:
    a = make(ledger, parameters={"recipient": "alice@example.com", "subject": "Quarterly 100% report"})
    b = make(ledger, job_type="upload_file", parameters={"path": "/tmp/x_y.txt"})
    ledger.cancel(b["id"])
    jobs, total = ledger.list(search="ALICE")
    assert total == 1 and jobs[0]["id"] == a["id"]
    assert ledger.list(search="100%")[1] == 1
    assert ledger.list(search="x_y")[1] == 1 and ledger.list(search="x%y")[1] == 0
    assert [j["id"] for j in ledger.list(status=["canceled"])[0]] == [b["id"]]
    assert [j["id"] for j in ledger.list(job_type="send_email")[0]] == [a["id"]]
    page, total = ledger.list(limit=1, offset=1)
    assert total == 2 and page[0]["id"] == a["id"]  # newest first


def test_counts_and_durations(ledger: Ledger) -> None:
    ok = ledger.claim(make(ledger)["id"], "w").job
    assert ok is not None
    ledger.succeed(ok, "w", None)
    bad = make(ledger, job_type="upload_file", max_retries=0)
    ledger.claim(bad["id"], "w")
    ledger.fail(bad["id"], "w", "x", None)
    by_status, by_type = ledger.counts()
    assert by_status["succeeded"] == 1 and by_status["failed"] == 1 and by_status["pending"] == 0
    assert by_type == {"send_email": {"succeeded": 1}, "upload_file": {"failed": 1}}
    assert len(ledger.durations()) == 1 and ledger.durations()[0] >= 0


def test_an_invalid_transition_among_concurrent_writes_fails_alone(ledger: Ledger) -> None:
    """Writes from several threads share transactions (group commit); one refused still leaves the rest."""
    done = ledger.claim(make(ledger)["id"], "w").job
    assert done is not None
    ledger.succeed(done, "w", None)
    errors: list[Exception] = []
    finished: list[int] = []
    lock = threading.Lock()

    def operator() -> None:
        for _ in range(20):
            try:
                ledger.cancel(done["id"])
            except InvalidTransition as exc:
                with lock:
                    errors.append(exc)

    def worker() -> None:
        for _ in range(20):
            running = ledger.claim(make(ledger)["id"], "w").job
            assert running is not None
            with lock:
                finished.append(ledger.succeed(running, "w", {"ok": True})["id"])  # type: ignore[index]

    threads = [threading.Thread(target=operator)] + [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 20 and all("succeeded" in str(e) for e in errors)
    assert len(finished) == 60 and ledger.count(JobStatus.SUCCEEDED) == 61
    assert all([h["type"] for h in ledger.history(i)] == ["created", "started", "succeeded"] for i in finished)
    assert [h["type"] for h in ledger.history(done["id"])] == ["created", "started", "succeeded"]


def test_times_are_stored_as_sortable_utc_text_on_sqlite(tmp_path: Path) -> None:
    """The format SQLAlchemy's DATETIME always wrote, so existing ledgers read back unchanged."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
        job = make(ledger, scheduled_time=at + timedelta(days=3650))
        with ledger.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT scheduled_time FROM jobs WHERE id = ?", (job["id"],)).scalar_one()
            conn.exec_driver_sql("UPDATE jobs SET created_at = '2026-03-01 12:00:00.000000' WHERE id = ?", (job["id"],))
            conn.commit()
        assert raw == "2036-02-27 12:00:00.000000"
        assert ledger.get(job["id"])["created_at"] == "2026-03-01T12:00:00+00:00"
        east = timezone(timedelta(hours=2))  # another offset is stored as its UTC time
        other = make(ledger, scheduled_time=datetime(2036, 2, 27, 14, 0, 0, 5, tzinfo=east))
        with ledger.engine.connect() as conn:
            sql = "SELECT scheduled_time FROM jobs WHERE id = ?"
            assert conn.exec_driver_sql(sql, (other["id"],)).scalar_one() == "2036-02-27 12:00:00.000005"
        with pytest.raises(ValueError, match="naive datetime"):
            make(ledger, scheduled_time=datetime(2036, 2, 27, 12, 0, 0))
        assert ledger.count(JobStatus.SCHEDULED) == 2  # the refused one wrote nothing
    finally:
        ledger.close()


def test_wal_checkpoints_run_off_the_commit_path_and_only_after_writes(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        checkpointer = ledger._checkpointer
        assert checkpointer is not None
        ledger.count(JobStatus.PENDING)
        time.sleep(0.1)
        assert checkpointer.checkpoints == 0  # reads alone start nothing: no timer in an idle process
        for _ in range(50):
            make(ledger)
        deadline = time.monotonic() + 5
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.checkpoints >= 1
    finally:
        ledger.close()


def test_the_ledger_and_the_queue_on_one_file_share_one_checkpointer(tmp_path: Path) -> None:
    """One checkpointer per database file in a process: it counts both's commits and stops with its last user."""
    from engine.queue.huey_queue import JobQueue

    path = tmp_path / "jobdeck.db"
    ledger = Ledger(f"sqlite:///{path}")
    queue = JobQueue(path)
    other = JobQueue(tmp_path / "queue.db")
    checkpointer = ledger._checkpointer
    assert checkpointer is not None
    try:
        assert queue.storage._checkpointer is checkpointer
        assert other.storage._checkpointer is not checkpointer
        queue.enqueue(1, 5)
        deadline = time.monotonic() + 1
        while checkpointer._thread is None and time.monotonic() < deadline:
            time.sleep(0.01)
        thread = checkpointer._thread
        assert thread is not None and thread.is_alive()  # started by the queue's commit
        ledger.close()
        ledger.close()  # a second close must not count as the queue's
        assert thread.is_alive()
        queue.enqueue(2, 5)
    finally:
        queue.storage.close()
        other.storage.close()
    thread.join(5)
    assert not thread.is_alive()


def test_a_checkpoint_syncs_the_log_before_it_takes_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's pending writes go to disk first, without the lock, so that writers wait only for the copy (see
    engine.storage.checkpoints); with no log file yet, the checkpoint alone runs."""
    from engine.storage import checkpoints

    path = tmp_path / "ledger.db"
    steps: list[str] = []
    real_fsync = checkpoints.os.fsync

    def fsync(fd: int) -> None:
        steps.append("fsync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    checkpointer = checkpoints.Checkpointer(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_trace_callback(lambda sql: steps.append(sql))
    try:
        assert checkpointer._checkpoint(conn)  # a plain database: no log to sync
        assert steps == ["PRAGMA wal_checkpoint(RESTART)"]
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        steps.clear()
        assert checkpointer._checkpoint(conn)
        assert steps == ["fsync ledger.db-wal", "PRAGMA wal_checkpoint(RESTART)"]
    finally:
        conn.close()


_OTHER_WRITER = """
import sqlite3, sys, time
from pathlib import Path
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("PRAGMA wal_autocheckpoint=0")  # as every Jobdeck connection: checkpoints are the Checkpointer's
conn.execute("CREATE TABLE IF NOT EXISTS other (n INTEGER)")
stop = Path(sys.argv[2])
print("writing", flush=True)
while not stop.exists():
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO other VALUES (1)")
    conn.execute("COMMIT")
    time.sleep(0.0002)  # a busy writer, but not one that never lets go of the lock
"""


def test_the_wal_starts_over_while_another_process_keeps_writing(tmp_path: Path) -> None:
    """Passive checkpoints never let the log rewind when two processes write in turn: it grew without end (90 MB
    after 4,000 jobs in the queue benchmark, 82 MB here). The checkpointer's RESTART checkpoints make it rewind,
    and they take the write lock, so the database stays whole (see engine.storage.checkpoints)."""
    db = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{db}")
    stop = tmp_path / "stop"
    other = subprocess.Popen([sys.executable, "-c", _OTHER_WRITER, str(db), str(stop)], stdout=subprocess.PIPE)
    try:
        assert other.stdout is not None and other.stdout.readline() == b"writing\n"
        rewinds_before = _wal_rewinds(db)
        for _ in range(4000):
            make(ledger)
        # Each rewind bumps the checkpoint sequence number in the log's header (0 throughout without them).
        assert _wal_rewinds(db) - rewinds_before >= 2
    finally:
        stop.touch()
        other.wait(10)
        ledger.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 4000


def _wal_rewinds(db: Path) -> int:
    """The checkpoint sequence number of the WAL header (bytes 12-15, big-endian): SQLite bumps it at each rewind."""
    with open(f"{db}-wal", "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


def test_no_jobdeck_connection_checkpoints_on_its_own(tmp_path: Path) -> None:
    """SQLite's automatic checkpoints are passive: they can lose the WAL-reset race (engine.storage.checkpoints)."""
    from engine.queue.huey_queue import JobQueue

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    queue = JobQueue(tmp_path / "queue.db")
    try:
        make(ledger)
        queue.enqueue(1, 5)
        writer = ledger._connection().driver_connection
        with ledger.engine.connect() as conn:
            pooled = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert pooled == 0
        assert queue.storage.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    finally:
        queue.storage.close()
        ledger.close()


def test_a_writer_waits_for_another_connections_lock_and_gets_it_once_released(tmp_path: Path) -> None:
    """``sqlite_begin_immediate`` yields, then polls, while another writer holds the lock; other errors pass."""
    from engine.storage.database import sqlite_begin_immediate, tune_writer

    path = tmp_path / "lock.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (n INTEGER)")
    waiter = sqlite3.connect(path, isolation_level=None)
    tune_writer(waiter)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    released = threading.Event()

    def release_later() -> None:
        time.sleep(0.2)
        released.set()
        holder.execute("COMMIT")

    thread = threading.Thread(target=release_later)
    thread.start()
    try:
        sqlite_begin_immediate(waiter.cursor())
        assert released.is_set()  # it waited for the holder
        waiter.execute("INSERT INTO t VALUES (2)")
        waiter.execute("COMMIT")
        assert waiter.execute("SELECT count(*) FROM t").fetchone()[0] == 2
        waiter.execute("BEGIN")  # a transaction already open: not "busy", so no retrying
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            sqlite_begin_immediate(waiter.cursor())
    finally:
        thread.join()
        holder.close()
        waiter.close()


def test_the_schema_head_read_from_the_migration_files_is_alembics() -> None:
    """Opening a ledger at the newest schema skips Alembic by reading the heads from the files; if that reading
    ever disagreed, every command would pay for Alembic again (never a wrong schema: Alembic decides then)."""
    from engine.storage.database import _newest, _newest_on_disk

    assert _newest_on_disk() == _newest()
