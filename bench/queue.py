"""Queue benchmark: Jobdeck end to end against raw Huey, idle pick-up latency, idle CPU — measured in one run.

    python bench/queue.py [--quick] [--jobs N] [--concurrency N] [--rounds N]

Throughput: submit N no-op jobs through the engine (validation, ledger, queue, wake) to a real `jobdeck worker`
and time until all have succeeded; and the same N no-op tasks through a bare SqliteHuey consumer in its own
process with the same thread count and the same durability: every commit is on disk before it is reported, so that
on both sides what an enqueue acknowledged survives a power cut (raw Huey: WAL with synchronous=FULL, Huey's
``fsync=True`` and SQLite's default; Jobdeck: a sync of the WAL after each commit, see ``database.tune_writer``).
Both clocks start once the submitting side is up (interpreter, imports), so that one-time start-up counts on
neither side. The two alternate for several rounds (``--rounds``), because the machine's speed drifts by a third
within minutes: each round's ratio compares neighbours, and the median round is reported. The ratio is the
overhead of the ledger. Pick-up latency: single jobs submitted to an idle worker, from the ledger's created_at to
its started_at. The last line is one JSON object.
"""

# ruff: noqa: E402 - the sys.path fix below must run before any import that could pull in `queue`
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `queue`; never let bench/ shadow it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


# ---------------------------------------------------------------------------------------------- raw huey
RAW_CONSUMER = r"""
import sys, threading, time
from huey import SqliteHuey
from huey.consumer import Consumer

path, total, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
huey = SqliteHuey("raw", filename=path, fsync=True, results=False)  # WAL, synchronous=FULL: the ledger's durability
done = 0
lock = threading.Lock()
finished = threading.Event()

@huey.task(name="noop")
def noop():
    global done
    with lock:
        done += 1
        if done == total:
            print(time.time(), flush=True)
            finished.set()

if sys.argv[4] == "enqueue":
    print(time.time(), flush=True)  # the clock starts once this process is up, as it does after Jobdeck's set-up
    for _ in range(total):
        noop()
    sys.exit(0)
consumer = Consumer(huey, workers=workers, worker_type="thread", periodic=False, initial_delay=0.001,
                    max_delay=0.01, backoff=1.05)
consumer._set_signal_handlers = lambda: None
consumer.start()
print("ready", flush=True)
finished.wait()
consumer.stop_flag.set()
"""


def raw_huey(total: int, workers: int, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "raw_consumer.py"
    script.write_text(RAW_CONSUMER)
    path = str(folder / "raw.db")
    consumer = subprocess.Popen(
        [sys.executable, str(script), path, str(total), str(workers), "consume"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == "ready"
        enqueue = subprocess.run(
            [sys.executable, str(script), path, str(total), str(workers), "enqueue"],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        start = float(enqueue.stdout)
        end = float(consumer.stdout.readline())
        return total / (end - start)
    finally:
        consumer.kill()
        consumer.wait()


# ---------------------------------------------------------------------------------------------- jobdeck
def jobdeck(
    total: int,
    workers: int,
    folder: Path,
    pickups: int,
    spacing: tuple[float, float],
    idle_s: float,
    rounds: int,
) -> dict[str, Any]:
    import psutil
    from workerproc import WorkerProcess

    home = folder / "home"
    os.environ["JOBDECK_HOME"] = str(home)
    os.environ["JOBDECK_JOB_MODULES"] = "bench.noop_jobs"
    import bench.noop_jobs  # noqa: F401 - the same type in this (submitting) process
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.events.client import try_wake
    from engine.jobs import registry
    from engine.operations import Operations
    from engine.storage.status import JobStatus

    worker = WorkerProcess(home, {"JOBDECK_JOB_MODULES": "bench.noop_jobs"}, concurrency=workers)
    worker.start()
    ops = Operations(Paths(home), store=MemoryStore())
    ops.after_enqueue = None
    registry.load()  # the job types' imports (boto3 among them) happen before the clock, as raw Huey's do
    try:
        # Throughput, alternating with raw Huey (its worker idle meanwhile): submit everything, wake once per batch
        # of 50 (like a script looping over `jobdeck submit` would wake after each; waking per job only adds
        # loopback round trips here).
        huey_rates, rates = [], []
        for n in range(rounds):
            huey_rates.append(raw_huey(total, workers, folder / f"raw-{n}"))
            start = time.time()
            for i in range(total):
                ops.create("noop", {})
                if i % 50 == 0:
                    try_wake(ops.paths)
            try_wake(ops.paths)
            while ops.ledger.count(JobStatus.SUCCEEDED) < total * (n + 1):
                time.sleep(0.005)
            rates.append(total / (time.time() - start))
            print(
                f"round {n + 1}: raw SqliteHuey {huey_rates[-1]:6.0f} tasks/s, jobdeck {rates[-1]:6.0f} jobs/s, "
                f"ratio {rates[-1] / huey_rates[-1]:.2f}",
                flush=True,
            )
        failed = ops.ledger.count(JobStatus.FAILED)
        assert failed == 0, f"{failed} no-op jobs failed"

        # Idle CPU: nothing queued.
        proc = psutil.Process(worker.pid)
        time.sleep(1.0)
        proc.cpu_percent(None)
        time.sleep(idle_s)
        idle_cpu = proc.cpu_percent(None)

        # Pick-up latency on an idle worker, each submission woken the way the CLI does it.
        ops.after_enqueue = lambda: try_wake(ops.paths)
        latencies = []
        for _ in range(pickups):
            time.sleep(random.uniform(*spacing))
            job = ops.create("noop", {})
            while (current := ops.ledger.get_row(job["id"])).started_at is None:
                time.sleep(0.002)
            created = datetime.fromisoformat(job["created_at"])
            latencies.append((current.started_at - created).total_seconds() * 1000)
    finally:
        worker.stop()
        ops.ledger.close()
    ratios = [ours / raw for ours, raw in zip(rates, huey_rates, strict=True)]
    median = sorted(range(rounds), key=ratios.__getitem__)[rounds // 2]
    return {
        "jobs_per_s": rates[median],
        "huey_jobs_per_s": huey_rates[median],
        "ratio": ratios[median],
        "ratios": ratios,
        "pickup_p50_ms": statistics.median(latencies),
        "pickup_p99_ms": percentile(latencies, 99),
        "idle_cpu_pct": idle_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, help="alternating throughput rounds (default 5, or 3 with --quick)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    pickups, spacing, idle_s = (12, (0.3, 1.0), 3.0) if args.quick else (50, (1.0, 3.0), 10.0)

    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-") as tmp:
        folder = Path(tmp)
        print(
            f"jobs={args.jobs} worker threads={args.concurrency} storage=SQLite WAL, every commit synced before it is "
            f"reported (both sides); rounds={rounds}; pickups={pickups} spaced {spacing[0]}-{spacing[1]} s",
            flush=True,
        )
        ours = jobdeck(args.jobs, args.concurrency, folder, pickups, spacing, idle_s, rounds)
        huey_rate, ratio = ours["huey_jobs_per_s"], ours["ratio"]
        print(f"raw SqliteHuey:  {huey_rate:8.0f} no-op tasks/s (the median round's)", flush=True)
        print(f"jobdeck e2e:     {ours['jobs_per_s']:8.0f} no-op jobs/s (submit → succeeded)", flush=True)
        spread = ", ".join(f"{r:.2f}" for r in sorted(ours["ratios"]))
        print(f"ratio:           {ratio:8.2f}  (goal ≥ 0.8; median of rounds: {spread})")
        print(f"pickup latency:  p50 {ours['pickup_p50_ms']:.1f} ms, p99 {ours['pickup_p99_ms']:.1f} ms (goal ≤ 50)")
        print(f"idle worker CPU: {ours['idle_cpu_pct']:.2f} % (goal < 1 %)")
    print(
        json.dumps(
            {
                "jobs_per_s": round(ours["jobs_per_s"], 1),
                "huey_jobs_per_s": round(huey_rate, 1),
                "ratio": round(ratio, 3),
                "pickup_p50_ms": round(ours["pickup_p50_ms"], 2),
                "pickup_p99_ms": round(ours["pickup_p99_ms"], 2),
                "idle_cpu_pct": round(ours["idle_cpu_pct"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
