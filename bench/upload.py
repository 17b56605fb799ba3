"""Upload benchmark: one large file through Jobdeck (real worker) and through plain boto3, to the same moto server.

    python bench/upload.py [--quick] [--size-mib N] [--rounds N] [--in-place] [--part-mib N] [--concurrency N]

moto's ThreadedMotoServer runs in its own process on 127.0.0.1, so neither client shares a GIL with the server.
Jobdeck: the file is submitted with ``jobdeck upload`` semantics (staged snapshot) to a real `jobdeck worker`; its
throughput is size / (finished_at - started_at) from the ledger, i.e. the transfer without staging and queueing
(both are printed too). boto3: ``upload_file`` with its default TransferConfig (8 MiB parts, 10 threads), timed in
this process. Jobdeck runs with its default settings (16 MiB parts, 4 in parallel: part buffers of 64 MB keep the
worker under its RSS goal) unless --part-mib / --concurrency say otherwise. Both send the same requests: CRC32 in a
header and a SigV4-signed payload (plain http). Each client runs ``--rounds`` times, interleaved with the other and
alternating who goes first, each upload starting after an ``os.sync()`` (else the previous upload's writeback, of
moto's spooled parts or of the snapshot, landed on the next client's clock: in three rounds the client going second
twice paid for it), and the best round of each counts: moto's own speed varies a lot between identical
rounds (its CompleteMultipartUpload alone takes 3.5-4.7 s of a 1 GiB round, for either client), so the best round
is the least noisy estimate of each client's ceiling. The worker's resident memory is sampled with psutil every
20 ms. The last line is one JSON object.
"""

# ruff: noqa: E402  (imports follow the sys.path fix below, on purpose)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py is named like the standard library's `queue`; never let bench/ shadow it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from datetime import datetime
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import boto3
import psutil
from botocore.config import Config
from servers import free_port
from workerproc import WorkerProcess

MiB = 1024**2
KEY_ID = SECRET = "testing"
MOTO = r"""
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the bench closes our stdin
server.stop()
"""


def start_moto(port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("moto did not start")
    return proc


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        for offset in range(0, size, 8 * MiB):
            fh.write(os.urandom(min(8 * MiB, size - offset)))


def s3(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"}))


def settle() -> None:
    """Before each timed upload: write back what the previous one left dirty (moto's spooled parts, a snapshot),
    so that neither client pays for the other's writeback."""
    os.sync()


def boto3_round(client: Any, path: Path, bucket: str) -> float:
    settle()
    start = time.perf_counter()
    client.upload_file(str(path), bucket, "boto3.bin")
    elapsed = time.perf_counter() - start
    client.delete_object(Bucket=bucket, Key="boto3.bin")
    return elapsed


class RssSampler:
    """Peak resident memory of one process, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def jobdeck_round(ops: Any, path: Path, client: Any, bucket: str, in_place: bool) -> tuple[float, float]:
    """(transfer seconds from the ledger, seconds from submission to success)."""
    settle()
    start = time.perf_counter()
    (job,) = ops.upload([str(path)], key_prefix="", conflict="overwrite", in_place=in_place)
    # A light poll (one indexed row, 20 a second): the bench shares the machine's cores with moto and the worker.
    while ops.ledger.get_row(job["id"]).status not in ("succeeded", "failed"):
        time.sleep(0.05)
    total = time.perf_counter() - start
    done = ops.get(job["id"])
    if done["status"] != "succeeded":
        raise RuntimeError(f"upload failed: {done['error']}")
    transfer = (
        datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    ).total_seconds()
    client.delete_object(Bucket=bucket, Key=done["result"]["key"])
    ops.delete(job["id"])
    return transfer, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 2 rounds (under a minute)")
    parser.add_argument("--size-mib", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--in-place", action="store_true", help="submit without the staged snapshot")
    parser.add_argument("--part-mib", type=int, default=None, help="Jobdeck's part size (default: its setting)")
    parser.add_argument("--concurrency", type=int, default=None, help="Jobdeck's parallel parts (default: its setting)")
    args = parser.parse_args()
    size = (args.size_mib or (256 if args.quick else 1024)) * MiB
    rounds = args.rounds or (2 if args.quick else 3)

    from engine.config import Paths, save_settings
    from engine.credentials.store import MemoryStore
    from engine.events.client import try_wake
    from engine.operations import Operations

    port = free_port()
    moto = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-upload-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        os.environ["JOBDECK_HOME"] = str(home)
        worker = WorkerProcess(home, {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET})
        ops = None
        try:
            client = s3(endpoint)
            bucket = "jobdeck-bench"
            client.create_bucket(Bucket=bucket)
            source = Path(tmp) / "payload.bin"
            make_file(source, size)
            tuning: dict[str, int] = {}
            if args.part_mib:
                tuning["multipart_part_bytes"] = args.part_mib * MiB
            if args.concurrency:
                tuning["multipart_concurrency"] = args.concurrency
            save_settings(
                {"s3_endpoint_url": endpoint, "s3_path_style": True, "s3_bucket": bucket, **tuning}, Paths(home)
            )
            worker.start()
            ops = Operations(Paths(home), store=MemoryStore())
            ops.after_enqueue = lambda: try_wake(ops.paths)
            sampler = RssSampler(worker.pid)
            baseline_rss = sampler.peak
            boto3_s: list[float] = []
            jobdeck_s: list[float] = []
            end_to_end_s: list[float] = []
            for n in range(rounds):
                # Alternate who goes first, so neither always meets a freshly emptied (or cluttered) moto.
                if n % 2 == 0:
                    boto3_s.append(boto3_round(client, source, bucket))
                transfer, total = jobdeck_round(ops, source, client, bucket, args.in_place)
                jobdeck_s.append(transfer)
                end_to_end_s.append(total)
                if n % 2 == 1:
                    boto3_s.append(boto3_round(client, source, bucket))
                print(
                    f"round {n + 1}: boto3 {size / MiB / boto3_s[-1]:.1f} MB/s, "
                    f"jobdeck {size / MiB / transfer:.1f} MB/s (with staging and pick-up {size / MiB / total:.1f})",
                    flush=True,
                )
            peak = sampler.stop()
        finally:
            if ops is not None:
                ops.ledger.close()
            worker.stop()
            assert moto.stdin is not None
            moto.stdin.close()
            try:
                moto.wait(10)
            except subprocess.TimeoutExpired:
                moto.kill()
    jobdeck = size / MiB / min(jobdeck_s)
    plain = size / MiB / min(boto3_s)
    print(f"file {size // MiB} MiB, {rounds} round(s); best of each")
    print(f"worker RSS: {baseline_rss / MiB:.0f} MB idle, {peak / MiB:.0f} MB peak")
    print(
        json.dumps(
            {
                "jobdeck_mb_s": round(jobdeck, 1),
                "boto3_mb_s": round(plain, 1),
                "ratio": round(jobdeck / plain, 3),
                "worker_peak_rss_mb": round(peak / MiB, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
