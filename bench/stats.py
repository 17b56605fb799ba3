"""Statistics benchmark: the `timeline` request over each window (1h, 24h, 7d, 30d) on a ledger holding N finished
jobs' events spread over the last 30 days, against the old per-minute `hours=1` read as the baseline.

    .venv/bin/python bench/stats.py [--events 300000] [--rounds 3]

The stats view reads `stats` and `timeline` again when events arrive (at most once a second), so this is what an
open Statistics window costs the worker per refresh. Seeds a temporary ledger with SQLAlchemy core bulk inserts.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path[:0] = [str(ROOT)]


def seed(home: Path, count: int) -> None:
    """``count`` succeeded/failed events (one in ten failed), evenly over the last 30 days, in chunks."""
    from sqlalchemy import insert

    from engine.config import Paths
    from engine.storage.repository import Ledger
    from engine.storage.tables import EVENTS

    ledger = Ledger(Paths(home).database_url())
    now = datetime.now(UTC)
    span = 30 * 86_400
    chunk = 20_000
    with ledger.engine.begin() as conn:
        for start in range(0, count, chunk):
            rows = [
                {"job_id": i + 1, "type": "failed" if i % 10 == 3 else "succeeded", "payload": {},
                 "at": now - timedelta(seconds=span * (count - i) / count)}
                for i in range(start, min(count, start + chunk))
            ]  # fmt: skip
            conn.execute(insert(EVENTS), rows)
    ledger.close()


def timed(call: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-stats-") as folder:
        home = Path(folder)
        ops = Operations(Paths(home), store=MemoryStore())
        ops.list()  # the ledger's tables exist
        seed(home, args.events)
        results = {
            "events": args.events,
            "baseline_hours_1_s": round(timed(lambda: ops.timeline(hours=1), args.rounds), 4),
        }
        for window in ("1h", "24h", "7d", "30d"):
            seconds = timed(lambda w=window: ops.timeline(window=w), args.rounds)
            total = sum(ops.timeline(window=window)["succeeded"]) + sum(ops.timeline(window=window)["failed"])
            results[f"{window}_s"] = round(seconds, 4)
            print(f"timeline {window:>4}: {seconds * 1000:8.1f} ms  ({total:,} events counted)")
        results["stats_s"] = round(timed(ops.stats, args.rounds), 4)
        print(f"stats      : {results['stats_s'] * 1000:8.1f} ms")
        ops.ledger.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
