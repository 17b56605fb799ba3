"""Schedules run by the real worker process: catch-up after downtime, overlap with a slow job, pause until a time,
and no planned time lost or run twice across kill -9."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventtools import Recorder, client, run_async
from test_upload_worker import wait_until

import bench.noop_jobs  # noqa: F401  (registers noop in this process too, for ``ops``)
from engine.errors import ValidationError

NOOP_ENV = {"JOBDECK_JOB_MODULES": "bench.noop_jobs"}


def runs(ops: Any, schedule_id: int) -> list[dict[str, Any]]:
    return sorted(ops.ledger.schedule_runs(schedule_id, 10_000), key=lambda job: job["planned_at"])


def planned(ops: Any, schedule_id: int) -> list[datetime]:
    return [datetime.fromisoformat(job["planned_at"]) for job in runs(ops, schedule_id)]


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def aligned_start(every_s: int, lead_s: float = 2.0) -> datetime:
    now = datetime.now(UTC).timestamp() + lead_s
    return datetime.fromtimestamp(math.ceil(now / every_s) * every_s, UTC)


def test_catch_up_skip_once_all_after_the_worker_was_down_across_three_planned_times(
    ops: Any, worker_factory: Callable[..., Any]
) -> None:
    every = timedelta(seconds=5)  # a restart (process start, ledger checks) must fit between two planned times
    start = aligned_start(5)
    ids = {
        policy: ops.schedules.add("noop", {}, every="5s", catch_up=policy, overlap="allow", tz="UTC",
                                  start=start.isoformat())["id"]
        for policy in ("skip", "once", "all")
    }  # fmt: skip
    worker = worker_factory(NOOP_ENV)
    wait_until("the first runs", lambda: all(planned(ops, sid) for sid in ids.values()))
    worker.stop()
    last = {policy: planned(ops, sid)[-1] for policy, sid in ids.items()}
    latest = max(last.values())
    restart_at = latest + 3 * every + timedelta(seconds=0.2)
    sleep_until(restart_at)  # three planned times pass with no worker
    worker.start()
    back_on_time = latest + 4 * every
    wait_until(
        "the first run after the restart", lambda: all(planned(ops, s)[-1] >= back_on_time for s in ids.values())
    )

    for policy, sid in ids.items():
        missed = [t for t in (last[policy] + k * every for k in range(1, 5)) if t <= restart_at]
        assert len(missed) >= 3
        made = [t for t in planned(ops, sid) if last[policy] < t <= restart_at]
        expected = {"skip": [], "once": missed[-1:], "all": missed}[policy]
        assert made == expected, policy
        assert back_on_time in planned(ops, sid), f"{policy}: the planned time after the restart runs as planned"
    for job in runs(ops, ids["all"]):
        assert job["schedule_id"] == ids["all"]


def test_overlap_skip_starts_no_run_while_a_slow_one_is_still_running(
    ops: Any, worker_factory: Callable[..., Any]
) -> None:
    skip = ops.schedules.add("noop", {"sleep_s": 2.2}, every="1s", overlap="skip", tz="UTC")["id"]
    allow = ops.schedules.add("noop", {"sleep_s": 2.2}, every="1s", overlap="allow", tz="UTC")["id"]
    worker_factory(NOOP_ENV, concurrency=8)
    wait_until("three runs of the skipping schedule", lambda: len(runs(ops, skip)) >= 3, timeout=60)
    for sid in (skip, allow):
        ops.schedules.pause(sid)
    wait_until("every run to finish", lambda: all(j["finished_at"] for s in (skip, allow) for j in runs(ops, s)), 60)

    def overlapping(jobs: list[dict[str, Any]]) -> int:
        return sum(b["created_at"] < a["finished_at"] for a, b in itertools.pairwise(jobs))

    skipped_runs = runs(ops, skip)
    assert overlapping(skipped_runs) == 0
    gaps = [b - a for a, b in zip(planned(ops, skip), planned(ops, skip)[1:], strict=False)]
    assert all(gap >= timedelta(seconds=2) for gap in gaps), "planned times were skipped while a run was busy"
    assert overlapping(runs(ops, allow)) > 0  # the same slow job does overlap when allowed


def test_pause_until_a_time_then_runs_again_by_itself_and_run_now_while_paused(
    ops: Any, worker_factory: Callable[..., Any]
) -> None:
    sid = ops.schedules.add("noop", {}, every="1s", tz="UTC")["id"]
    worker_factory(NOOP_ENV)
    wait_until("a first run", lambda: planned(ops, sid))
    until = datetime.now(UTC) + timedelta(seconds=3)
    paused = ops.schedules.pause(sid, note="maintenance", until=until.isoformat())
    paused_at = datetime.fromisoformat(paused["updated_at"])
    assert paused["paused"] and paused["pause_note"] == "maintenance"
    job = ops.schedules.run_now(sid)
    wait_until("the run made by run-now", lambda: ops.get(job["id"])["status"] == "succeeded")
    wait_until("runs after the pause", lambda: planned(ops, sid)[-1] > until, timeout=20)
    during = [t for t in planned(ops, sid) if paused_at < t <= until]
    assert during == [datetime.fromisoformat(job["planned_at"])]  # only the run asked for
    assert not ops.schedules.get(sid)["paused"]


@run_async
async def test_the_control_channel_runs_schedule_operations_and_streams_schedule_updated(
    jobdeck_home: Any, worker_factory: Callable[..., Any]
) -> None:
    worker_factory(NOOP_ENV)
    recorder = Recorder()
    c = await client(jobdeck_home, recorder)
    try:
        await c.subscribe(0)
        s = await c.request("schedule_add", job_type="noop", parameters={}, every="1s", name="ticker", tz="UTC")
        await recorder.wait_for(lambda events: any(e.get("job", {}).get("schedule_id") == s["id"] for e in events))
        paused = await c.request("schedule_pause", schedule_id=s["id"], note="enough")
        assert paused["paused"] and paused["next_runs"] == []
        with pytest.raises(ValidationError) as caught:
            await c.request("schedule_add", job_type="noop", parameters={}, cron="0 25 * * *")
        assert caught.value.field == "cron"
        (listed,) = await c.request("schedule_list")
        assert listed["name"] == "ticker" and listed["paused"]
        await recorder.wait_for(lambda events: any(e.get("event") == "paused" for e in events))
    finally:
        await c.close()
    changes = [e for e in recorder.events if e["type"] == "schedule.updated"]
    assert [e["event"] for e in changes] == ["added", "paused"]
    assert all(e["v"] == 1 and e["schedule"]["id"] == s["id"] for e in changes)
    assert changes[1]["schedule"]["pause_note"] == "enough"


def kill_storm(ops: Any, worker_factory: Callable[..., Any], cycles: int) -> None:
    ids = [ops.schedules.add("noop", {}, every="1s", catch_up="all", overlap="allow", tz="UTC")["id"] for _ in range(3)]
    worker = worker_factory(NOOP_ENV, start=False)
    rng = random.Random(21)
    for _ in range(cycles):
        worker.start()
        time.sleep(rng.uniform(0.2, 1.5))
        worker.kill()
    worker.start()
    time.sleep(1.5)
    for sid in ids:
        ops.schedules.pause(sid)
    worker.stop()
    for sid in ids:
        times = planned(ops, sid)
        assert len(times) == len(set(times)), "a planned time ran twice"
        first, last = times[0], times[-1]
        grid = [first + timedelta(seconds=k) for k in range(round((last - first).total_seconds()) + 1)]
        assert times == grid, "a planned time was lost (catch-up all must make every one)"


def test_no_planned_time_is_lost_or_run_twice_under_kill_9(ops: Any, worker_factory: Callable[..., Any]) -> None:
    kill_storm(ops, worker_factory, cycles=3)


@pytest.mark.long
def test_no_planned_time_is_lost_or_run_twice_under_a_kill_9_storm(
    ops: Any, worker_factory: Callable[..., Any]
) -> None:
    kill_storm(ops, worker_factory, cycles=25)


def test_a_scheduled_upload_reads_its_file_at_each_run(
    ops: Any, worker_factory: Callable[..., Any], s3_server: Any, s3_bucket: str, tmp_path: Any
) -> None:
    """Each run uploads the file as it is at its planned time (the worker's scheduler snapshots it then); a run
    whose file is gone fails with the reason, and the schedule goes on."""
    from test_upload_worker import AWS_ENV, configure

    configure(ops, s3_server, s3_bucket)
    report = tmp_path / "report.csv"
    report.write_text("day 1\n")
    worker_factory(env=AWS_ENV)
    s = ops.schedules.add("upload_file", {"path": str(report), "key": "reports/latest.csv"}, every="2s",
                          start=aligned_start(2).isoformat(), max_retries=0)  # fmt: skip

    def uploaded(after: datetime | None = None) -> bytes | None:
        done = [j for j in runs(ops, s["id"]) if j["status"] == "succeeded"
                and (after is None or datetime.fromisoformat(j["planned_at"]) > after)]  # fmt: skip
        return (
            s3_server.client().get_object(Bucket=s3_bucket, Key="reports/latest.csv")["Body"].read() if done else None
        )

    assert wait_until("the first run's upload", uploaded) == b"day 1\n"
    report.write_text("day 2, longer\n")
    changed = datetime.now(UTC)
    wait_until("a run after the change", lambda: uploaded(changed))
    assert s3_server.client().get_object(Bucket=s3_bucket, Key="reports/latest.csv")["Body"].read() == (
        b"day 2, longer\n"
    )
    ops.schedules.pause(s["id"])
    report.unlink()
    job = ops.schedules.run_now(s["id"])
    assert job["status"] == "failed" and job["error"] == f"could not start the run: path: {report} does not exist"
    assert all(j["status"] in ("succeeded", "failed") for j in runs(ops, s["id"]))
