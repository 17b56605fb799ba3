"""What a view of the ledger asks for, on SQLite and on PostgreSQL: pages in any order, counts under a filter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from test_ledger import ledger, make  # noqa: F401  (the fixture, on both databases)

from engine.storage.reads import SORT_KEYS, JobQuery
from engine.storage.repository import JOBS, Ledger
from engine.storage.status import JobStatus

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def seed(ledger: Ledger, n: int = 40) -> None:  # noqa: F811
    """Jobs with repeated and missing values in every sortable field, so ties and NULLs are exercised."""
    rng = random.Random(7)
    for i in range(n):
        kind = rng.choice(["send_email", "upload_file"])
        parameters = (  # repeated summaries, a missing subject, Windows and POSIX paths, case
            {"recipient": f"User{i % 7}@example.com", **({"subject": f"Report {i % 3}"} if i % 4 else {})}
            if kind == "send_email"
            else {"path": rng.choice(["/tmp/a/B.txt", "C:\\data\\b.TXT", "x.bin", f"/srv/{i % 5}/Z{i % 2}.log"])}
        )
        job = make(ledger, job_type=kind, priority=rng.randint(0, 2), parameters=parameters)
        started = T0 + timedelta(seconds=rng.randint(0, 5)) if i % 3 else None
        values: dict[str, Any] = {
            "status": rng.choice(["pending", "failed", "succeeded", "canceled"]),
            "attempts": rng.randint(0, 2),
            "created_at": T0 + timedelta(seconds=rng.randint(0, 3)),
            "started_at": started,
            "finished_at": started + timedelta(seconds=rng.choice([1, 2, 2])) if started else None,
            "next_attempt_at": T0 + timedelta(minutes=rng.randint(0, 2)) if i % 4 == 0 else None,
            "scheduled_time": T0 + timedelta(minutes=rng.randint(0, 2)) if i % 5 == 0 else None,
            "error": rng.choice([None, "boom", "refused", "a" * 150 + str(i)]),
        }
        with ledger.engine.begin() as conn:
            conn.execute(update(JOBS).where(JOBS.c.id == job["id"]).values(**values))


def expected_key(job: dict[str, Any], key: str) -> Any:
    def t(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    if key == "when":
        return t(job["next_attempt_at"]) or t(job["scheduled_time"])
    if key == "duration":
        start, end = t(job["started_at"]), t(job["finished_at"])
        return round((end - start).total_seconds(), 3) if start and end else None
    if key == "outcome":
        return job["error"][:100] if job["error"] else None
    if key == "summary":  # the text the Summary column shows, lowered: recipient — subject, or the file name
        params = job["parameters"]
        if job["job_type"] == "send_email":
            return f"{params['recipient']} — {params.get('subject', '')}".lower()
        return params["path"].replace("\\", "/").rsplit("/", 1)[-1].lower()
    if key == "created_at":
        return t(job["created_at"])
    return job[key]


def expected_order(jobs: list[dict[str, Any]], key: str, descending: bool, dialect: str) -> list[int]:
    """SQLite puts NULL before every value, PostgreSQL after: each database's own ascending order."""
    nulls_low = dialect == "sqlite"

    def sort_key(job: dict[str, Any]) -> tuple[Any, ...]:
        value = expected_key(job, key)
        missing = value is None
        return (missing != nulls_low, value if not missing else 0, job["id"])

    return [j["id"] for j in sorted(jobs, key=sort_key, reverse=descending)]


@pytest.mark.parametrize("key", SORT_KEYS)
def test_every_sort_key_orders_and_pages_in_the_ledger(ledger: Ledger, key: str) -> None:  # noqa: F811
    seed(ledger)
    everything, total = ledger.list(limit=1000)
    assert total == 40
    for descending in (False, True):
        want = expected_order(everything, key, descending, ledger.dialect)
        got = [j["id"] for j in ledger.list(sort=key, descending=descending, limit=1000, count=False)[0]]
        assert got == want, (key, descending)
        pages = [ledger.list(sort=key, descending=descending, limit=7, offset=o)[0] for o in range(0, 40, 7)]
        assert [j["id"] for page in pages for j in page] == want
        # the last rows, read as the first rows of the reversed order (how a view jumps to its end)
        tail = ledger.list(sort=key, descending=not descending, limit=5, count=False)[0]
        assert [j["id"] for j in reversed(tail)] == want[-5:]


def test_a_view_bound_ignores_newer_jobs_and_counts_follow_type_and_search(ledger: Ledger) -> None:  # noqa: F811
    seed(ledger, 12)
    newest = ledger.max_id()
    make(ledger, parameters={"recipient": "late@example.com"})
    everything, total = ledger.list(JobQuery(max_id=newest), limit=100)
    assert total == 12 and max(j["id"] for j in everything) == newest
    query = JobQuery(job_type="send_email", search="USER")
    counts = ledger.status_counts(JobQuery(statuses=("failed",), job_type="send_email", search="USER"))
    jobs = [j for j in everything if j["job_type"] == "send_email"]
    assert sum(counts.values()) == len(jobs) == ledger.matching(query) > 0
    assert counts["failed"] == sum(1 for j in jobs if j["status"] == "failed")


def test_a_bulk_action_changes_what_it_applies_to_a_batch_a_transaction(
    ledger: Ledger,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.storage import repository

    monkeypatch.setattr(repository, "BULK_BATCH", 4)
    jobs = [make(ledger, parameters={"recipient": f"r{i}@example.com"}) for i in range(11)]
    for job in jobs[:9]:
        ledger.cancel(job["id"])
    heard: list[int] = []
    ledger.add_listener(lambda events: heard.append(len(events)))
    before = ledger.last_seq()
    # "r1" matches r1 (canceled: retried) and r10 (pending: retry does not apply to it)
    done = ledger.act_on(JobQuery(statuses=("canceled", "pending"), search="R1"), "retry")
    assert [job["id"] for job, _ in done] == [jobs[1]["id"]] and ledger.get(jobs[10]["id"])["status"] == "pending"
    done = ledger.act_on(JobQuery(ids=tuple(j["id"] for j in jobs)), "delete")
    assert len(done) == 11 and ledger.list()[1] == 0
    events = ledger.events_since(before)
    assert [e["type"] for e in events] == ["retried"] + ["deleted"] * 11
    assert heard == [1, 4, 4, 3]  # one commit (and one notification) per batch of at most 4


def test_bulk_counts_first_and_acts_on_a_filter_once(ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import run as main

    jobs = [ops.create("send_email", {"recipient": f"b{i}@example.com", "subject": "s", "body": "b"},
                       scheduled_time="2099-01-01T00:00") for i in range(5)]  # fmt: skip
    ops.cancel(jobs[0]["id"])
    assert ops.rules()["run_now"] == ["scheduled", "retrying"]
    dry = ops.bulk("cancel", dry_run=True, status=["scheduled", "canceled"])
    assert (dry["matched"], dry["applicable"], dry["done"]) == (5, 4, 0)
    assert ops.ledger.count(JobStatus.CANCELED) == 1  # a dry run changes nothing
    assert main(["cancel", "--status", "scheduled", "--search", "B1@", "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "1 job match; cancel applies to 1"
    assert main(["cancel", "--status", "scheduled,canceled"]) == 0
    assert capsys.readouterr().out.splitlines() == ["5 jobs match; cancel applies to 4", "cancel: 4 jobs done"]
    report = ops.bulk("retry", ids=[jobs[0]["id"], jobs[1]["id"]])
    assert (report["matched"], report["applicable"], report["done"]) == (2, 2, 2)
    assert ops.ledger.count(JobStatus.PENDING) == 2


def test_deleted_jobs_wait_in_the_trash_until_restored_or_purged(ledger: Ledger) -> None:  # noqa: F811
    ledger.purge(everything=True)  # the PostgreSQL database is shared by the session
    jobs = [make(ledger, parameters={"recipient": f"t{i}@example.com"}) for i in range(5)]
    ledger.cancel(jobs[0]["id"])
    ledger.act_on(JobQuery(ids=tuple(j["id"] for j in jobs[:3])), "delete", batch="b1")
    ledger.delete(jobs[3]["id"], batch="b2")
    trashed, total = ledger.trash_list()
    assert total == 4 and ledger.list()[1] == 1
    assert {j["id"] for j in trashed} == {j["id"] for j in jobs[:4]} and all(j["deleted_at"] for j in trashed)
    before = ledger.last_seq()
    back = ledger.restore(batch="b1", outbox=lambda _cursor, _job: None)
    assert [(j["id"], j["status"]) for j in back] == [(jobs[0]["id"], "canceled"), (jobs[1]["id"], "pending"),
                                                      (jobs[2]["id"], "pending")]  # fmt: skip
    assert ledger.get(jobs[0]["id"])["parameters"] == {"recipient": "t0@example.com"}
    assert [e["type"] for e in ledger.events_since(before)] == ["restored"] * 3
    assert ledger.purge(older_than=T0) == 0 and ledger.trash_list()[1] == 1
    assert ledger.purge(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1 and ledger.trash_list()[1] == 0


def test_undo_and_the_cli_trash(ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import run as main

    jobs = [ops.create("send_email", {"recipient": f"u{i}@example.com", "subject": "s", "body": "b"},
                       scheduled_time="2099-01-01T00:00") for i in range(3)]  # fmt: skip
    report = ops.bulk("delete", status=["scheduled"])
    assert report["done"] == 3 and ops.ledger.list()[1] == 0
    assert ops.restore(batch=report["batch"])["restored"] == 3
    assert [j["status"] for j in ops.ledger.list()[0]] == ["scheduled"] * 3
    assert main(["delete", str(jobs[0]["id"])]) == 0 and main(["trash", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "1 job in the trash" and str(jobs[0]["id"]) in out[-2]
    assert main(["trash", "restore", str(jobs[0]["id"])]) == 0 and ops.ledger.list()[1] == 3
    ops.delete(jobs[1]["id"])
    assert main(["trash", "purge", "--all"]) == 0 and ops.ledger.trash_list()[1] == 0
    assert capsys.readouterr().out.splitlines()[-1] == "purged 1 job"


def test_restoring_or_purging_a_job_not_in_the_trash_is_refused_and_changes_nothing(
    ops: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import run as main

    job = ops.create("send_email", {"recipient": "u@example.com", "subject": "s", "body": "b"},
                     scheduled_time="2099-01-01T00:00")  # fmt: skip
    ops.delete(job["id"])
    capsys.readouterr()
    for action in ("restore", "purge"):
        assert main(["trash", action, str(job["id"]), "999"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "jobdeck: error: ID: not in the trash: 999 (the trash lists the deleted jobs it keeps)", err
        assert ops.ledger.trash_list()[1] == 1 and ops.ledger.list()[1] == 0  # the one that was there stays
    assert main(["trash", "restore", str(job["id"])]) == 0 and capsys.readouterr().out.strip() == "restored 1 job"
    assert ops.ledger.get(job["id"])["status"] == "scheduled"


def test_a_view_or_bulk_request_names_a_wrong_argument(ops: Any) -> None:
    from engine.errors import ValidationError

    for call in (lambda: ops.list(colour="red"), lambda: ops.bulk("retry", colour="red"),
                 lambda: ops.list(sort="colour"), lambda: ops.bulk("archive", status=["failed"])):  # fmt: skip
        with pytest.raises(ValidationError) as err:
            call()
        assert err.value.field in ("colour", "sort", "action") and "allowed" in err.value.message


def test_finished_jobs_are_counted_per_bucket_in_the_database(ledger: Ledger) -> None:  # noqa: F811
    from sqlalchemy import insert

    from engine.stats import WINDOWS, buckets, window_start
    from engine.storage.tables import EVENTS

    now = datetime.now(UTC)
    ages_h = [700, 200, 30.5, 30, 5, 0.2, 0.1]  # hours ago, oldest first (seq order is time order)
    with ledger.engine.begin() as conn:
        conn.execute(insert(EVENTS), [{"job_id": i + 1, "type": "failed" if i % 2 else "succeeded", "payload": {},
                                       "at": now - timedelta(hours=age)} for i, age in enumerate(ages_h)])  # fmt: skip
    for window, within_h in (("1h", 1), ("24h", 24), ("7d", 168), ("30d", 720)):
        span_s, bucket_s = WINDOWS[window]
        counted = ledger.finished_per_bucket(window_start(span_s, bucket_s, now), bucket_s)
        series = buckets(counted, span_s, bucket_s, now)
        expected = [(i, age) for i, age in enumerate(ages_h) if age < within_h]
        assert sum(series["succeeded"]) == sum(1 for i, _ in expected if i % 2 == 0), window
        assert sum(series["failed"]) == sum(1 for i, _ in expected if i % 2), window
        # each event is in the bucket that holds its time
        start = datetime.fromisoformat(series["start"])
        for i, age in expected:
            index = int((now - timedelta(hours=age) - start).total_seconds() // bucket_s)
            assert (series["failed"] if i % 2 else series["succeeded"])[index] >= 1, (window, age)


COLUMN_ORDERS = ("job_type", "summary", "status", "priority", "attempts", "when", "created_at", "duration", "outcome")


def test_every_column_of_the_table_has_an_order() -> None:
    assert set(SORT_KEYS) == {"id", *COLUMN_ORDERS}


@pytest.mark.parametrize("key", COLUMN_ORDERS)
def test_every_order_is_an_index_walk(ledger: Ledger, key: str) -> None:  # noqa: F811
    """A page of any order, the Summary column's included, reads its index in order: no sort of the whole table."""
    from sqlalchemy import select

    from engine.storage.reads import sort_keys

    with ledger.engine.begin() as conn:
        stmt = select(JOBS.c.id).order_by(*sort_keys(key, ledger.dialect, True)).limit(5)
        sql = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        if ledger.dialect == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an empty table: the index only if it can
            # ... and on an empty table a walk of another index plus an incremental sort can cost the same: the
            # question here is whether an index gives the whole order
            conn.exec_driver_sql("SET LOCAL enable_incremental_sort = off")
            plan = " ".join(str(row[0]) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert "ix_jobs_sort_" in plan and "TEMP B-TREE" not in plan and " Sort " not in f" {plan} ", plan
