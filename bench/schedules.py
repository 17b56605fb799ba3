"""Schedules benchmark: idle CPU of a worker holding 1,000 schedules against an idle worker with none, start
precision of a due run, and the time start-up takes to catch up — measured in one run.

    python bench/schedules.py [--quick] [--schedules N] [--idle S]

Two real ``jobdeck worker`` processes in separate data folders run side by side: one with no schedule, one with
N schedules (daily cron rules spread over the day and hourly-or-longer intervals, none due while measured). Both
idle for the same seconds at the same time, so the machine's drift hits both; the goal is that the schedules cost
no measurable CPU (< 1 % of a core more than the worker with none). Then an ``every 1s`` schedule is added to the
busy worker and the lateness of its runs (started_at − planned_at) is taken; then that worker is stopped across
three planned times and restarted, and the time from the launch of its process to the catch-up run's creation is
taken. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/queue.py would shadow the standard library's queue: run with the repository root on the path instead.
sys.path[:] = [str(ROOT), str(ROOT / "tests")] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

ENV = {"JOBDECK_JOB_MODULES": "bench.noop_jobs", "JOBDECK_KEYRING": "memory"}


def operations(home: Path) -> Any:
    os.environ.update(ENV)
    import bench.noop_jobs  # noqa: F401  (registers noop)
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    return Operations(Paths(home), store=MemoryStore())


def add_schedules(ops: Any, count: int) -> None:
    for i in range(count):
        if i % 2:
            ops.schedules.add("noop", {}, every=f"{1 + i % 24}h", name=f"interval {i}", tz="UTC")
        else:
            minute, hour = i % 60, (datetime.now().hour + 12 + i % 6) % 24  # hours away from now
            ops.schedules.add("noop", {}, cron=f"{minute} {hour} * * *", name=f"daily {i}", tz="Europe/Berlin")


def main() -> int:
    import psutil
    from workerproc import WorkerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seconds idle (a smoke test)")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=None, help="seconds both workers idle while measured")
    args = parser.parse_args()
    idle_s = args.idle or (5.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-schedules-") as tmp:
        empty_home, busy_home = Path(tmp) / "none", Path(tmp) / "many"
        ops = operations(busy_home)
        started = time.perf_counter()
        add_schedules(ops, args.schedules)
        print(f"added {args.schedules} schedules in {time.perf_counter() - started:.1f} s", flush=True)
        workers = [WorkerProcess(home, dict(ENV)) for home in (empty_home, busy_home)]
        try:
            for worker in workers:
                worker.start()
            time.sleep(2.0)  # start-up settles (imports done, first pass made)
            procs = [psutil.Process(w.pid) for w in workers]
            for proc in procs:
                proc.cpu_percent(None)
            time.sleep(idle_s)
            none_cpu, many_cpu = (proc.cpu_percent(None) for proc in procs)
            print(f"idle CPU over {idle_s:.0f} s: no schedule {none_cpu:.2f} %, {args.schedules} schedules "
                  f"{many_cpu:.2f} % (goal: < 1 % more)", flush=True)  # fmt: skip

            from engine.events.client import try_wake

            ops.after_enqueue = lambda: try_wake(ops.paths)  # as the CLI does: the worker hears of the change
            ticker = ops.schedules.add("noop", {}, every="1s", name="ticker", tz="UTC", catch_up="once")
            time.sleep(6.0)
            ran = sorted((j for j in ops.ledger.schedule_runs(ticker["id"], 100) if j["started_at"]),
                         key=lambda j: j["planned_at"])  # fmt: skip
            late = [
                (datetime.fromisoformat(j["started_at"]) - datetime.fromisoformat(j["planned_at"])).total_seconds()
                for j in ran
            ] or [0.0]
            print(f"start after the planned time: median {statistics.median(late) * 1000:.0f} ms, "
                  f"max {max(late) * 1000:.0f} ms over {len(late)} runs (goal < 1 s)", flush=True)  # fmt: skip

            workers[1].stop()
            time.sleep(3.5)  # three planned times pass with no worker
            known = {j["id"] for j in ops.ledger.schedule_runs(ticker["id"], 1000)}
            worker_start = datetime.now(UTC)  # the process is launched: interpreter, imports and ledger checks count
            workers[1].start()
            deadline = time.monotonic() + 30
            caught = None
            while caught is None and time.monotonic() < deadline:
                fresh = [j for j in ops.ledger.schedule_runs(ticker["id"], 1000) if j["id"] not in known]
                caught = min(fresh, key=lambda j: j["created_at"]) if fresh else None  # the start-up's first pass
                time.sleep(0.05)
            catch_up_s = (
                (datetime.fromisoformat(caught["created_at"]) - worker_start).total_seconds() if caught else None
            )
            print(f"catch-up run made {catch_up_s if catch_up_s is None else round(catch_up_s, 3)} s after the "
                  "worker process was launched (goal < 2 s)", flush=True)  # fmt: skip
        finally:
            for worker in workers:
                worker.stop()
            ops.ledger.close()

    print(
        json.dumps(
            {
                "schedules": args.schedules,
                "idle_s": idle_s,
                "idle_cpu_pct_none": round(none_cpu, 2),
                "idle_cpu_pct_many": round(many_cpu, 2),
                "idle_cpu_extra_pct_of_a_core": round(many_cpu - none_cpu, 2),
                "idle_cpu_ratio": round(many_cpu / none_cpu, 2) if none_cpu else None,
                "start_late_ms_median": round(statistics.median(late) * 1000, 1),
                "start_late_ms_max": round(max(late) * 1000, 1),
                "catch_up_after_start_s": None if catch_up_s is None else round(catch_up_s, 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
