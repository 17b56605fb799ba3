"""Schedules: rules across DST, the ledger's schedule transitions (SQLite and PostgreSQL), and the CLI contract.

The clock is the test's: the rule functions and the ledger's ``schedule_fire``/``schedule_resume_due`` take the
time they work from, so DST changes and missed planned times are reached without waiting for them.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from workerproc import ROOT

from engine.errors import ValidationError
from engine.events import schema
from engine.schedule_rules import describe, parse_cron, parse_every, parse_rule, planned_times
from engine.storage.repository import EVENTS, JOBS, Ledger
from engine.storage.schedules import SCHEDULES, ScheduleNotFound, resume_values, schedule_to_dict
from engine.storage.status import JobStatus

ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ rules across DST
def local_times(expr: str, tz: str, after: datetime, count: int) -> list[datetime]:
    times = planned_times(parse_cron(expr), tz, after, count, anchor=ANCHOR)
    return [t.astimezone(ZoneInfo(tz)) for t in times]


@pytest.mark.parametrize(
    ("tz", "spring", "autumn"),
    [
        ("Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC), datetime(2026, 10, 23, 12, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 6, 12, tzinfo=UTC), datetime(2026, 10, 30, 12, tzinfo=UTC)),
    ],
)
def test_a_daily_0900_runs_at_0900_local_time_on_both_sides_of_each_dst_change(
    tz: str, spring: datetime, autumn: datetime
) -> None:
    for around in (spring, autumn):
        times = local_times("0 9 * * *", tz, around, 5)
        assert [(t.hour, t.minute) for t in times] == [(9, 0)] * 5
        offsets = {t.utcoffset() for t in times}
        assert len(offsets) == 2, f"the 5 days around {around:%F} in {tz} should cross a DST change: {times}"
        assert [t.date() for t in times] == [times[0].date() + timedelta(days=i) for i in range(5)]


@pytest.mark.parametrize(
    ("tz", "spring_day", "autumn_day", "skipped", "repeated"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29), datetime(2026, 10, 25), "30 2 * * *", "30 2 * * *"),
        ("America/New_York", datetime(2026, 3, 8), datetime(2026, 11, 1), "30 2 * * *", "30 1 * * *"),
    ],
)
def test_a_time_the_clock_skips_runs_at_the_next_valid_minute_and_a_repeated_time_runs_once(
    tz: str, spring_day: datetime, autumn_day: datetime, skipped: str, repeated: str
) -> None:
    zone = ZoneInfo(tz)
    before = spring_day.replace(tzinfo=zone) - timedelta(hours=12)
    first = local_times(skipped, tz, before, 1)[0]
    assert (first.date(), first.hour, first.minute) == (spring_day.date(), 3, 0)

    before = autumn_day.replace(tzinfo=zone) - timedelta(hours=12)
    times = local_times(repeated, tz, before, 3)
    on_the_day = [t for t in times if t.date() == autumn_day.date()]
    assert len(on_the_day) == 1, times
    assert len({t.astimezone(UTC) for t in times}) == 3 and times == sorted(times)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
def test_an_interval_is_elapsed_time_across_a_dst_change(tz: str) -> None:
    start = datetime(2026, 3, 7, 20, tzinfo=UTC)  # the changes of both zones fall within the next 4 weeks
    times = planned_times(parse_every("2h"), tz, start, 24 * 30, anchor=start)
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {timedelta(hours=2)}
    assert len({t.astimezone(ZoneInfo(tz)).utcoffset() for t in times}) == 2


def test_start_and_end_bound_the_planned_times() -> None:
    rule = parse_every("15m")
    start = ANCHOR + timedelta(minutes=7)
    end = start + timedelta(hours=1)
    times = planned_times(rule, "UTC", ANCHOR, 10, anchor=ANCHOR, start=start, end=end)
    assert times[0] == start and times[-1] == end and len(times) == 5


def test_shorthands_and_plain_language() -> None:
    assert describe(parse_cron("0 9 * * 1-5")) == "At 09:00, Monday through Friday"
    assert describe(parse_every("15m")) == "Every 15 minutes"
    assert describe(parse_every("1d")) == "Every day"
    for alias, first in (("@hourly", "01:00"), ("@daily", "00:00"), ("@weekly", "00:00"), ("@monthly", "00:00")):
        (when,) = planned_times(parse_cron(alias), "UTC", ANCHOR, 1, anchor=ANCHOR)
        assert when.strftime("%H:%M") == first
    (weekly,) = planned_times(parse_cron("@weekly"), "UTC", ANCHOR, 1, anchor=ANCHOR)
    assert weekly.weekday() == 6  # Sunday


@pytest.mark.parametrize(
    ("parse", "text", "field"),
    [
        (parse_cron, "61 * * * *", "cron"),
        (parse_cron, "* * * *", "cron"),
        (parse_cron, "0 9 * * * *", "cron"),
        (parse_cron, "@fortnightly", "cron"),
        (parse_every, "5x", "every"),
        (parse_every, "0s", "every"),
        (parse_every, "400d", "every"),
    ],
)
def test_bad_rules_name_their_field(parse: Callable[[str], Any], text: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(text)
    assert caught.value.field == field


# ------------------------------------------------------------------ the ledger (SQLite and PostgreSQL)
@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    )
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:  # the postgres database is shared by the session: start clean
        for table in (EVENTS, JOBS, SCHEDULES):
            conn.execute(table.delete())
    yield ledger
    ledger.close()


def add(ledger: Ledger, **kw: Any) -> dict[str, Any]:
    values = {
        "name": "nightly", "job_type": "noop", "parameters": {}, "priority": 5, "max_retries": 0, "rule": "every 60s",
        "tz": "UTC", "start_at": None, "end_at": None, "catch_up": "once", "overlap": "allow",
    }  # fmt: skip
    return ledger.schedule_add(values | kw)


def runs(ledger: Ledger, schedule_id: int) -> list[datetime]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(JOBS.c.planned_at).where(JOBS.c.schedule_id == schedule_id)).scalars().all()
    return sorted(rows)


def cursor(ledger: Ledger, schedule_id: int) -> datetime:
    return ledger.schedule_row(schedule_id)["next_run_at"]


def no_outbox(_cursor: Any, _job: dict[str, Any]) -> None:
    pass


def test_a_planned_time_makes_one_job_and_never_a_second(ledger: Ledger) -> None:
    s = add(ledger)
    first = cursor(ledger, s["id"])
    (due,) = ledger.schedule_fire(first, no_outbox)
    (job,) = due.jobs
    assert job["schedule_id"] == s["id"] and job["planned_at"] == first.isoformat()
    assert job["status"] == JobStatus.PENDING
    assert cursor(ledger, s["id"]) == first + timedelta(seconds=60)
    assert ledger.schedule_fire(first, no_outbox) == []  # nothing due any more

    # The cursor set back (as if its move were lost): the unique key keeps the planned time from a second job.
    with ledger.engine.begin() as conn:
        conn.execute(update(SCHEDULES).where(SCHEDULES.c.id == s["id"]).values(next_run_at=first))
    (again,) = ledger.schedule_fire(first, no_outbox)
    assert again.jobs == [] and runs(ledger, s["id"]) == [first]
    assert ledger.get(job["id"])["planned_at"] == first.isoformat()


@pytest.mark.parametrize(("policy", "expected"), [("skip", []), ("once", [2]), ("all", [0, 1, 2])])
def test_catch_up_after_three_missed_planned_times(ledger: Ledger, policy: str, expected: list[int]) -> None:
    s = add(ledger, catch_up=policy)
    first = cursor(ledger, s["id"])
    planned = [first + timedelta(seconds=60 * i) for i in range(3)]
    now = planned[-1] + timedelta(seconds=1)
    (due,) = ledger.schedule_fire(now, no_outbox, missed_before=now)  # the worker starts after 3 planned times
    assert runs(ledger, s["id"]) == [planned[i] for i in expected]
    assert due.skipped == 3 - len(expected)
    assert cursor(ledger, s["id"]) == planned[-1] + timedelta(seconds=60)


def test_planned_times_that_came_due_while_watched_all_run_whatever_the_policy(ledger: Ledger) -> None:
    s = add(ledger, catch_up="skip")
    first = cursor(ledger, s["id"])
    ledger.schedule_fire(first + timedelta(seconds=61), no_outbox, missed_before=first)
    assert runs(ledger, s["id"]) == [first, first + timedelta(seconds=60)]


def test_overlap_skip_makes_no_run_while_the_last_one_waits_or_runs(ledger: Ledger) -> None:
    skip, allow = add(ledger, overlap="skip"), add(ledger, overlap="allow")
    first = cursor(ledger, skip["id"])
    ledger.schedule_fire(first, no_outbox)
    for s in (skip, allow):
        ledger.schedule_fire(cursor(ledger, s["id"]), no_outbox)
    assert len(runs(ledger, skip["id"])) == 1 and len(runs(ledger, allow["id"])) == 2
    (job,) = ledger.schedule_runs(skip["id"])
    ledger.claim(job["id"], "w1")
    ledger.schedule_fire(cursor(ledger, skip["id"]), no_outbox)
    assert len(runs(ledger, skip["id"])) == 1  # running counts as well as waiting
    ledger.succeed(ledger.get(job["id"]), "w1", None)
    ledger.schedule_fire(cursor(ledger, skip["id"]), no_outbox)
    assert len(runs(ledger, skip["id"])) == 2


def test_pause_until_resume_and_run_now(ledger: Ledger) -> None:
    s = add(ledger)
    first = cursor(ledger, s["id"])
    paused = ledger.schedule_change(s["id"], lambda _r: {"paused": True, "pause_note": "holiday"}, "schedule_paused")
    assert paused["paused"] and paused["next_run_at"] is None and paused["next_runs"] == []
    assert ledger.schedule_fire(first + timedelta(hours=1), no_outbox) == []

    job = ledger.schedule_run_now(s["id"], no_outbox)  # paused or not, run now makes one run now
    assert job["schedule_id"] == s["id"] and job["planned_at"] is not None

    until = datetime.now(UTC) + timedelta(hours=2)
    shown = ledger.schedule_change(s["id"], lambda _r: {"paused_until": until}, "schedule_paused")
    assert datetime.fromisoformat(shown["next_run_at"]) > until and len(shown["next_runs"]) == 5
    assert ledger.schedule_resume_due(until - timedelta(seconds=1)) == []
    (resumed,) = ledger.schedule_resume_due(until)
    assert not resumed["paused"] and resumed["pause_note"] is None
    assert datetime.fromisoformat(resumed["next_run_at"]) > until - timedelta(seconds=1)

    ledger.schedule_change(s["id"], lambda _r: {"paused": True}, "schedule_paused")
    back = ledger.schedule_change(s["id"], lambda r: resume_values(r, datetime.now(UTC)), "schedule_resumed")
    assert not back["paused"] and datetime.fromisoformat(back["next_run_at"]) > datetime.now(UTC)
    assert runs(ledger, s["id"]) == [datetime.fromisoformat(job["planned_at"])]


def test_every_change_is_an_event_in_the_job_events_sequence(ledger: Ledger) -> None:
    since = ledger.last_seq()
    s = add(ledger)
    ledger.schedule_change(s["id"], lambda _r: {"name": "renamed"}, "schedule_edited")
    ledger.schedule_fire(cursor(ledger, s["id"]), no_outbox)
    ledger.schedule_delete(s["id"])
    with pytest.raises(ScheduleNotFound):
        ledger.schedule_delete(s["id"])
    stored = ledger.events_since(since)
    wire = [schema.job_event(e) for e in stored]
    kinds = [(m["type"], m["event"]) for m in wire]
    assert kinds == [
        ("schedule.updated", "added"), ("schedule.updated", "edited"), ("job.created", "created"),
        ("schedule.updated", "deleted"),
    ]  # fmt: skip
    assert wire[1]["schedule"]["name"] == "renamed" and wire[1]["v"] == schema.VERSION
    assert [e["seq"] for e in stored] == sorted(e["seq"] for e in stored)
    assert wire[2]["job"]["schedule_id"] == s["id"]


def test_the_public_schedule_shows_its_next_five_runs_and_an_ended_one_none(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    s = add(ledger, rule="0 9 * * *", tz="Europe/Berlin", end_at=now + timedelta(days=2, hours=12))
    assert s["description"] == "At 09:00" and s["kind"] == "cron"
    assert len(s["next_runs"]) in (2, 3) and s["next_run_at"] == s["next_runs"][0]
    row = ledger.schedule_row(s["id"])
    assert schedule_to_dict(row, now) == schedule_to_dict(row, now)  # a pure function of the row and the clock
    full = add(ledger)
    assert len(full["next_runs"]) == 5


# ------------------------------------------------------------------ the CLI contract
@pytest.fixture
def jobdeck(jobdeck_home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT), "JOBDECK_KEYRING": "memory"}
    env["JOBDECK_JOB_MODULES"] = "bench.noop_jobs"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env, timeout=60
        )

    return run


SHOWN = {"id", "name", "job_type", "rule", "description", "tz", "paused", "next_run_at", "next_runs", "catch_up",
         "overlap"}  # fmt: skip


def test_cli_add_show_list_pause_resume_run_now_edit_delete(jobdeck: Callable[..., Any]) -> None:
    made = jobdeck("schedule", "add", "noop", "--cron", "0 9 * * 1-5", "--tz", "America/New_York", "--name",
                   "weekday report", "--param", "sleep_s=0", "--catch-up", "all", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    s = json.loads(made.stdout)
    assert set(s) >= SHOWN
    assert (s["name"], s["rule"], s["tz"], s["catch_up"], s["overlap"], s["paused"]) == (
        "weekday report", "0 9 * * 1-5", "America/New_York", "all", "skip", False)  # fmt: skip
    assert s["description"] == "At 09:00, Monday through Friday" and len(s["next_runs"]) == 5
    assert all(datetime.fromisoformat(t).astimezone(ZoneInfo("America/New_York")).hour == 9 for t in s["next_runs"])

    shown = json.loads(jobdeck("schedule", "show", str(s["id"]), "--json").stdout)
    assert set(shown) >= SHOWN and shown["next_runs"] == s["next_runs"] and shown["runs"] == []
    listed = json.loads(jobdeck("schedule", "list", "--json").stdout)
    assert [x["id"] for x in listed] == [s["id"]] and set(listed[0]) >= SHOWN

    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    out = jobdeck("schedule", "pause", str(s["id"]), "--note", "holiday", "--until", until)
    assert out.returncode == 0, out.stderr
    paused = json.loads(jobdeck("schedule", "show", str(s["id"]), "--json").stdout)
    assert paused["paused"] and paused["pause_note"] == "holiday" and paused["next_run_at"] > until[:19]

    job = json.loads(jobdeck("schedule", "run-now", str(s["id"]), "--json").stdout)
    assert job["schedule_id"] == s["id"] and job["planned_at"]
    shown_job = json.loads(jobdeck("show", str(job["id"]), "--json").stdout)
    assert (shown_job["schedule_id"], shown_job["planned_at"]) == (s["id"], job["planned_at"])
    (listed_job,) = json.loads(jobdeck("list", "--json").stdout)["jobs"]
    assert (listed_job["schedule_id"], listed_job["planned_at"]) == (s["id"], job["planned_at"])

    assert jobdeck("schedule", "resume", str(s["id"])).returncode == 0
    edited = json.loads(jobdeck("schedule", "edit", str(s["id"]), "--every", "15m", "--json").stdout)
    assert (edited["rule"], edited["description"], edited["paused"]) == ("every 15m", "Every 15 minutes", False)
    assert edited["name"] == "weekday report" and edited["tz"] == "America/New_York"
    gone = jobdeck("schedule", "delete", str(s["id"]))
    assert gone.returncode == 0 and json.loads(jobdeck("schedule", "list", "--json").stdout) == []
    assert json.loads(jobdeck("show", str(job["id"]), "--json").stdout)["schedule_id"] == s["id"]


@pytest.fixture
def cli(jobdeck_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """``jobdeck`` in this process (the bad-input cases are many; a process each would take minutes)."""
    import bench.noop_jobs  # noqa: F401  (registers noop)
    from engine.cli import run

    monkeypatch.setenv("JOBDECK_KEYRING", "memory")

    def call(*args: str) -> tuple[int, str, str]:
        try:
            code = run(list(args))
        except SystemExit as exc:  # argparse's own checks (choices, a required or an exclusive option)
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["add", "noop", "--cron", "61 * * * *"], "--cron"),
        (["add", "noop", "--cron", "@fortnightly"], "--cron"),
        (["add", "noop", "--every", "5x"], "--every"),
        (["add", "noop", "--every", "5m", "--tz", "Mars/Olympus"], "--tz"),
        (["add", "noop", "--every", "5m", "--priority", "12"], "--priority"),
        (["add", "noop", "--every", "5m", "--max-retries", "-1"], "--max-retries"),
        (["add", "noop", "--every", "5m", "--start", "tomorrow"], "--start"),
        (["add", "noop", "--every", "5m", "--start", "2030-01-02", "--end", "2030-01-01"], "--end"),
        (["add", "noop", "--every", "5m", "--param", "sleep_s=-1"], "--param sleep_s"),
        (["add", "noop", "--every", "5m", "--param", "colour=red"], "--param colour"),
        (["add", "noop", "--every", "5m", "--params-json", "[1]"], "--params-json"),
        (["add", "nosuch", "--every", "5m"], "TYPE"),
        (["add", "upload_file", "--every", "1d", "--param", "path=/etc/hostname"], "--param bucket"),
        (
            ["add", "upload_file", "--every", "1d", "--param", "path=/no/such/file", "--param", "bucket=b"],
            "--param path",
        ),
        (["edit", "1", "--cron", "* * *"], "--cron"),
        (["edit", "1", "--tz", "Nowhere/Town"], "--tz"),
        (["pause", "1", "--until", "2001-01-01T00:00"], "--until"),
        (["show", "999"], "ID"),
        (["run-now", "x"], "ID"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_option_and_writes_nothing(
    cli: Callable[..., Any], args: list[str], option: str
) -> None:
    assert cli("schedule", "add", "noop", "--every", "5m", "--name", "kept")[0] == 0
    before = cli("schedule", "list", "--json")[1]
    code, out, err = cli("schedule", *args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"error: {option}:" in lines[0], lines
    assert cli("schedule", "list", "--json")[1] == before


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["add", "noop"], "--cron --every"),
        (["add", "noop", "--cron", "@daily", "--every", "1d"], "--every"),
        (["add", "noop", "--every", "5m", "--catch-up", "sometimes"], "--catch-up"),
        (["add", "noop", "--every", "5m", "--overlap", "queue"], "--overlap"),
    ],
)
def test_cli_usage_errors_exit_2_naming_the_option(cli: Callable[..., Any], args: list[str], option: str) -> None:
    code, _, err = cli("schedule", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and option in err, err


def test_a_recovered_ledger_keeps_its_schedules(tmp_path: Path) -> None:
    from engine.storage.integrity import recover

    source = Ledger(f"sqlite:///{tmp_path / 'old.db'}")
    s = add(source, name="kept")
    source.close()
    recover(tmp_path / "old.db", tmp_path / "new.db", tool="")
    recovered = Ledger(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        (row,) = recovered.schedule_rows()
        assert schedule_to_dict(row)["name"] == "kept" and row["id"] == s["id"]
    finally:
        recovered.close()


def test_jobdeck_watch_prints_a_schedule_change_on_one_line(ledger: Ledger) -> None:
    from engine.watch import format_event

    since = ledger.last_seq()
    s = add(ledger, name="nightly backup")
    ledger.schedule_change(s["id"], lambda _r: {"paused": True}, "schedule_paused")
    lines = [format_event(schema.job_event(e)) for e in ledger.events_since(since)]
    assert all(line is not None and "\n" not in line for line in lines)
    assert "added" in lines[0] and "next " in lines[0] and "nightly backup" in lines[0]
    assert "paused" in lines[1]


def test_a_preview_checks_a_rule_and_shows_its_next_runs_without_writing(ops: Any) -> None:
    shown = ops.schedules.preview(cron="30 2 * * *", tz="Europe/Berlin")
    assert shown["description"] == "At 02:30" and len(shown["next_runs"]) == 5
    assert shown["next_run_at"] == shown["next_runs"][0]
    every = ops.schedules.preview(every="15m", tz="UTC")
    gaps = {datetime.fromisoformat(b) - datetime.fromisoformat(a) for a, b in itertools.pairwise(every["next_runs"])}
    assert gaps == {timedelta(minutes=15)}
    for args, field in (
        ({"cron": "0 9 * *"}, "cron"),
        ({"every": "9y"}, "every"),
        ({"every": "1h", "tz": "X/Y"}, "tz"),
    ):
        with pytest.raises(ValidationError) as caught:
            ops.schedules.preview(**args)
        assert caught.value.field == field
    assert ops.schedules.list() == []


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("every 5 min", "every 5m"),
        ("Every 2 Hours", "every 2h"),
        ("every hour", "every 1h"),
        ("every day", "every 1d"),
        ("every 90s", "every 90s"),
        ("15m", "every 15m"),
        ("  0 9  * * 1-5 ", "0 9 * * 1-5"),
        ("@Daily", "@daily"),
    ],
)
def test_one_rule_field_takes_cron_shorthands_and_intervals_in_words(text: str, stored: str) -> None:
    assert parse_rule(text).text == stored


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "a schedule needs a rule: a cron expression (0 9 * * 1-5), a shorthand (@daily) or an interval"),
        ("every 5x", "'every 5x' is not an interval; use a number and a unit: every 90s, every 15 min"),
        ("every 0s", "'every 0s': the interval must be from 1s to 366d"),
        ("everyday", "'everyday' is neither 5 cron fields (minute hour day-of-month month day-of-week) nor an "),
        ("61 * * * *", "'61 * * * *': bad minute"),
        ("@fortnightly", "unknown shorthand '@fortnightly'"),
    ],
)
def test_a_bad_rule_in_the_rule_field_says_what_it_was_taken_for(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule(text)
    assert caught.value.field == "rule" and caught.value.message.startswith(says), caught.value.message
    assert "\n" not in caught.value.message


def test_an_editor_previews_and_adds_with_one_rule_text(ops: Any) -> None:
    shown = ops.schedules.preview(rule="every 5 min", tz="UTC")
    assert shown["rule"] == "every 5m" and shown["description"] == "Every 5 minutes" and len(shown["next_runs"]) == 5
    with pytest.raises(ValidationError) as caught:
        ops.schedules.preview(rule="every 5 min", cron="@daily")
    assert caught.value.field == "cron" and "not both" in caught.value.message
    s = ops.schedules.add("send_email", {"recipient": "a@example.com", "subject": "s", "body": "b"}, rule="@daily")
    assert s["rule"] == "@daily"
    edited = ops.schedules.edit(s["id"], rule="every 2 hours")
    assert edited["rule"] == "every 2h" and edited["description"] == "Every 2 hours"


def test_a_type_that_cannot_check_a_template_is_refused_in_one_line(ops: Any) -> None:
    from engine.jobs.base import JobType, Prepared
    from engine.schedule_ops import refusal

    class Snapshot(JobType):  # prepares its input at submission, with no way to check a template
        name = "snapshot"

        def prepare(self, params: Any, settings: Any, spool: Path) -> Prepared:
            return Prepared({})

    assert refusal(Snapshot()) == (
        "snapshot cannot be scheduled: it prepares its input when a job is submitted and cannot check a template; "
        "submit each one instead (with a time, to run it later)"
    )
    refusals = {t["name"]: t["schedule_refusal"] for t in ops.types()}
    assert (refusals["send_email"], refusals["upload_file"]) == (None, None)


def test_the_list_carries_each_schedules_latest_runs_when_asked(ledger: Ledger) -> None:
    a, b, idle = add(ledger), add(ledger), add(ledger)
    ledger.schedule_change(idle["id"], lambda _r: {"paused": True}, "schedule_paused")
    first = cursor(ledger, a["id"])
    for minute in range(4):
        ledger.schedule_fire(first + timedelta(seconds=60 * minute), no_outbox)
    (newest, *_) = ledger.schedule_runs(a["id"])
    ledger.claim(newest["id"], "w1")
    recent = ledger.schedule_recent_runs(3)
    assert set(recent) == {a["id"], b["id"]} and idle["id"] not in recent
    assert [r["status"] for r in recent[a["id"]]] == ["running", "pending", "pending"]
    planned = [r["planned_at"] for r in recent[a["id"]]]
    assert planned == sorted(planned, reverse=True) and len(recent[b["id"]]) == 3
    assert ledger.schedule_recent_runs(0) == {}


def test_the_list_op_attaches_recent_runs_only_when_asked(ops: Any) -> None:
    s = ops.schedules.add("send_email", {"recipient": "a@example.com", "subject": "s", "body": "b"}, every="1d")
    job = ops.schedules.run_now(s["id"])
    assert "recent_runs" not in ops.schedules.list()[0]
    (listed,) = ops.schedules.list(recent=10)
    assert listed["recent_runs"] == [{"id": job["id"], "status": "pending", "planned_at": job["planned_at"]}]
    with pytest.raises(ValidationError) as caught:
        ops.schedules.list(recent=1000)
    assert caught.value.field == "recent"


def test_an_editor_is_told_the_policies_their_defaults_and_the_zone_a_schedule_gets(ops: Any) -> None:
    ops.schedules.local_zone = lambda: "Europe/Berlin"
    options = ops.schedules.options()
    assert options == {
        "catch_up": ["skip", "once", "all"], "catch_up_default": "once", "catch_up_limit": 100,
        "overlap": ["skip", "allow"], "overlap_default": "skip", "local_tz": "Europe/Berlin",
    }  # fmt: skip
    s = ops.schedules.add("send_email", {"recipient": "a@example.com", "subject": "s", "body": "b"}, every="1h")
    assert (s["catch_up"], s["overlap"], s["tz"]) == ("once", "skip", "Europe/Berlin")


class SleepingClock:
    """A wall clock that a test can move ahead while the monotonic one is not: ``sleep(s)`` arms a jump of ``s``
    seconds, which ``wake()`` (called at the end of one of the scheduler's waits) applies, as a suspend does."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.pending = 0.0
        self.lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.pending += seconds

    def wake(self) -> None:
        with self.lock:
            self.offset, self.pending = self.offset + self.pending, 0.0

    def wall(self) -> float:
        with self.lock:
            return time.time() + self.offset


@pytest.mark.parametrize(("policy", "expected"), [("once", [3]), ("skip", []), ("all", [1, 2, 3])])
def test_a_sleep_of_the_machine_is_seen_and_the_runs_it_missed_follow_the_catch_up_policy(
    ledger: Ledger, caplog: pytest.LogCaptureFixture, policy: str, expected: list[int]
) -> None:
    """The machine sleeps 190 s across three planned times of a 60 s schedule. The latest of them is only ~10 s
    late on waking: without telling a sleep from a slow pass it would run as planned (and ``skip`` would run it);
    seen as a sleep, all three were missed and the catch-up policy decides."""
    from engine.worker.scheduler import Scheduler

    s = add(ledger, rule="every 60s", catch_up=policy)
    planned = [cursor(ledger, s["id"]) + timedelta(seconds=60 * i) for i in range(4)]
    clock: SleepingClock = SleepingClock()
    made: list[dict[str, Any]] = []

    class Suspended(Scheduler):
        def _sleep(self, step: float | None) -> bool:
            woken = super()._sleep(step)
            clock.wake()  # the machine slept during this wait (if the test said so)
            return woken

    scheduler = Suspended(ledger, no_outbox, made.extend, wall=clock.wall)
    caplog.set_level(logging.INFO, logger="engine.worker.scheduler")
    scheduler.start()
    try:
        clock.sleep((planned[2] - datetime.now(UTC)).total_seconds() + 10)
        deadline = time.monotonic() + 30
        while cursor(ledger, s["id"]) <= planned[2] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert cursor(ledger, s["id"]) == planned[3]
    assert runs(ledger, s["id"]) == [planned[i - 1] for i in expected]
    assert [job["planned_at"] for job in made] == [planned[i - 1].isoformat() for i in expected]
    assert "the machine slept" in caplog.text


def test_a_scheduled_upload_keeps_the_path_and_snapshots_the_file_at_each_run(ops: Any, tmp_path: Path) -> None:
    from engine.storage.schedules import SCHEDULES as TABLE

    report = tmp_path / "report.csv"
    report.write_text("v1")
    with pytest.raises(ValidationError) as caught:
        ops.schedules.add("upload_file", {"path": str(tmp_path / "nope.csv"), "bucket": "reports"}, every="1h")
    assert caught.value.field == "path" and "does not exist" in caught.value.message
    copied = {"path": str(report), "bucket": "reports", "size": 2, "mtime_ns": 1, "job_tag": "abc"}  # a job's
    s = ops.schedules.add("upload_file", copied, every="1h", overlap="allow")
    assert s["parameters"] == {"path": str(report), "bucket": "reports", "in_place": False}
    assert list(ops.paths.spool.glob("job-*")) == []  # saving the schedule stages nothing

    def fire() -> dict[str, Any]:
        (due,) = ops.ledger.schedule_fire(cursor(ops.ledger, s["id"]), no_outbox, prepare=ops.prepare_run)
        (job,) = due.jobs
        return job

    def staged(job: dict[str, Any]) -> str:
        return Path(ops.ledger.get_row(job["id"]).staged_path).read_text()

    first = fire()
    report.write_text("v2, later")
    second = fire()
    assert (staged(first), staged(second)) == ("v1", "v2, later")
    assert (
        second["parameters"]["size"] == len("v2, later")
        and first["parameters"]["job_tag"] != (second["parameters"]["job_tag"])
    )
    # A planned time that already has its job: the copy staged for it again is removed, not left in the spool.
    with ops.ledger.engine.begin() as conn:
        conn.execute(
            update(TABLE).where(TABLE.c.id == s["id"]).values(next_run_at=datetime.fromisoformat(second["planned_at"]))
        )
    ops.ledger.schedule_fire(datetime.fromisoformat(second["planned_at"]), no_outbox, prepare=ops.prepare_run)
    assert len(list(ops.paths.spool.glob("job-*"))) == 2
    report.unlink()
    gone = fire()
    assert gone["status"] == "failed" and gone["error"] == f"could not start the run: path: {report} does not exist"
    assert ops.ledger.get_row(gone["id"]).staged_path is None
    report.write_text("v3")
    now = ops.schedules.run_now(s["id"])
    assert staged(now) == "v3" and now["status"] == "pending"
