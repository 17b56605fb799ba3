"""Event stream benchmark: commit-to-client latency at ~1,000 job transitions a second, and one client's top rate.

    python bench/events.py [--quick] [--rate CREATES_PER_S] [--seconds S]

A real `jobdeck worker` runs no-op jobs; the driver creates them over the control channel at a steady pace
(each job makes three transitions: created, started, succeeded). A subscriber in its own process notes when
each event arrives; latency is arrival minus the event's ``at``, which the ledger takes inside the transaction
just before it commits (same machine, same clock). Then a fresh subscriber replays the whole backlog from seq 0:
the most events a second one client receives. Both are set against a baseline measured in the same run: the
same-sized messages over a bare websockets connection on loopback (no ledger, no worker). The last line is one
JSON object: {"latency_p50_ms", "latency_p99_ms", "events_per_s", ...}.
"""

# ruff: noqa: E402  (the path fix below must run before the standard library imports)
from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a file named like the standard library's `queue`; never let it shadow the real one.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

# A subscriber in its own process, so the driver's work never delays a receipt. It prints one JSON line.
RECEIVER = r"""
import json, sys, time
from websockets.sync.client import connect
port, token, since, stop_at_seq, stop_after_succeeded = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                                                         int(sys.argv[4]), int(sys.argv[5]))
from datetime import datetime
latencies, count, succeeded, first, last = [], 0, 0, None, None
with connect(f"ws://127.0.0.1:{port}/", additional_headers={"Authorization": f"Bearer {token}"}, proxy=None,
             max_size=None, compression=None) as ws:
    ws.send(json.dumps({"type": "subscribe", "since": since}))
    print("ready", flush=True)
    while True:
        raw = ws.recv()
        now = time.time()
        event = json.loads(raw)
        if "seq" not in event or not event.get("type", "").startswith("job."):
            continue
        count += 1
        first = first or now
        last = now
        if stop_after_succeeded:
            latencies.append(now - datetime.fromisoformat(event["at"]).timestamp())
            succeeded += event["event"] == "succeeded"
            if succeeded >= stop_after_succeeded:
                break
        elif event["seq"] >= stop_at_seq:
            break
print(json.dumps({"latencies": latencies, "count": count, "first": first, "last": last}), flush=True)
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


def start_receiver(
    info: dict[str, object], since: int, stop_at_seq: int, stop_after_succeeded: int
) -> subprocess.Popen[str]:
    args = [str(info["port"]), str(info["token"]), str(since), str(stop_at_seq), str(stop_after_succeeded)]
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish_receiver(proc: subprocess.Popen[str], timeout: float) -> dict[str, object]:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- the worker
async def drive(home: Path, rate: float, seconds: float) -> int:
    """Create noop jobs at ``rate`` a second for ``seconds``; returns how many were created."""
    from engine.config import Paths
    from engine.events.client import WorkerClient

    client = await WorkerClient.connect(Paths(home))
    total = int(rate * seconds)
    in_flight = asyncio.Semaphore(32)
    tasks = []
    start = time.perf_counter()

    async def create() -> None:
        try:
            await client.request("create", job_type="noop", parameters={})
        finally:
            in_flight.release()

    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        tasks.append(asyncio.create_task(create()))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - start)
    print(f"created {total} jobs in {time.perf_counter() - start:.1f} s ({achieved:.0f}/s asked {rate:.0f}/s)")
    await client.close()
    return total


# ---------------------------------------------------------------------------------------------- the baseline
def baseline(message_bytes: int, paced_count: int, burst_count: int) -> tuple[float, float, float]:
    """Bare websockets on loopback with same-sized messages: (p50 ms, p99 ms) paced at 1,000/s, and msgs/s flat out."""
    from websockets.sync.server import serve

    filler = "x" * max(0, message_bytes - 40)
    go = threading.Event()

    def handler(ws) -> None:  # type: ignore[no-untyped-def]
        ws.recv()
        start = time.perf_counter()
        for i in range(paced_count):
            delay = start + i / 1000 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ws.send(json.dumps({"at": time.time(), "pad": filler}))
        for _ in range(burst_count):
            ws.send(json.dumps({"at": time.time(), "pad": filler}))
        go.wait(30)

    with serve(handler, "127.0.0.1", 0, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        code = RAW_RECEIVER % (port, paced_count, burst_count)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        go.set()
        server.shutdown()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    latencies = result["latencies"]
    return percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000, burst_count / result["burst_s"]


RAW_RECEIVER = r"""
import json, time
from websockets.sync.client import connect
with connect("ws://127.0.0.1:%d/", proxy=None, compression=None, max_size=None) as ws:
    ws.send("go")
    latencies = []
    for _ in range(%d):
        raw = ws.recv()
        latencies.append(time.time() - json.loads(raw)["at"])
    start = time.perf_counter()
    for _ in range(%d):
        json.loads(ws.recv())
    print(json.dumps({"latencies": latencies, "burst_s": time.perf_counter() - start}))
"""


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    parser.add_argument("--rate", type=float, default=333.0, help="jobs created a second (3 transitions each)")
    parser.add_argument("--seconds", type=float, default=None, help="how long to drive (default 30; quick 10)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)

    from workerproc import WorkerProcess

    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-events-") as tmp:
        home = Path(tmp)
        worker = WorkerProcess(home, {"JOBDECK_JOB_MODULES": "bench.noop_jobs"}, args.concurrency)
        info = worker.start()
        try:
            jobs = int(args.rate * seconds)
            receiver = start_receiver(info, 0, 0, jobs)
            started = time.perf_counter()
            os.environ["JOBDECK_HOME"] = str(home)
            asyncio.run(drive(home, args.rate, seconds))
            live = finish_receiver(receiver, timeout=seconds * 4 + 60)
            span = float(live["last"]) - float(live["first"])  # type: ignore[arg-type]
            transitions_per_s = int(live["count"]) / span  # type: ignore[call-overload]
            latencies: list[float] = live["latencies"]  # type: ignore[assignment]
            p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
            print(
                f"live: {live['count']} events in {span:.1f} s = {transitions_per_s:.0f} transitions/s; "
                f"commit → client p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies) * 1000:.1f} ms "
                f"(drive took {time.perf_counter() - started:.1f} s)"
            )

            last_seq = 3 * jobs
            replay = start_receiver(info, 0, last_seq, 0)
            result = finish_receiver(replay, timeout=120)
            replay_s = float(result["last"]) - float(result["first"])  # type: ignore[arg-type]
            events_per_s = int(result["count"]) / replay_s  # type: ignore[call-overload]
            print(f"replay: {result['count']} events in {replay_s:.2f} s = {events_per_s:.0f} events/s to one client")
        finally:
            worker.stop()
            print(worker.output().count("ERROR"), "error line(s) in the worker log")

    base_p50, base_p99, base_rate = baseline(650, 2000 if args.quick else 5000, 20000)
    print(
        f"baseline (bare websockets, same-sized messages): p50 {base_p50:.2f} ms, p99 {base_p99:.2f} ms, "
        f"{base_rate:.0f} msgs/s; ratios: p99 {p99 / base_p99:.1f}x, rate {events_per_s / base_rate:.2f}x"
    )
    print(
        json.dumps(
            {
                "latency_p50_ms": round(p50, 2),
                "latency_p99_ms": round(p99, 2),
                "events_per_s": round(events_per_s),
                "transitions_per_s": round(transitions_per_s),
                "baseline_p99_ms": round(base_p99, 2),
                "baseline_msgs_per_s": round(base_rate),
                "p99_goal_ms": 20,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
