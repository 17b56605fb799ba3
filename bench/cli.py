"""Command start-up benchmark: `--help`, `submit` and `list` against a bare `python -c pass` on the same machine.

    python bench/cli.py [--rounds N]

Each round runs the baseline and each command once, alternating, so that machine load falls on both alike; each
figure is the median over the rounds. `submit` and `list` run against a fresh data folder (JOBDECK_HOME) with no
worker, so the time is the command's own: start-up, the ledger opened, one job written or one page read. The last
line is one JSON object: {"help_ratio", "submit_ratio", "list_ratio", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "main.py")
SUBMIT_PARAMS = ["--param", "recipient=a@example.com", "--param", "subject=hello", "--param", "body=bench"]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "JOBDECK_HOME": home}
        commands = {
            "baseline": [sys.executable, "-c", "pass"],
            "help": [sys.executable, MAIN, "--help"],
            "submit": [sys.executable, MAIN, "submit", "send_email", *SUBMIT_PARAMS],
            "list": [sys.executable, MAIN, "list"],
        }
        _timed(commands["submit"], env)  # the first command makes the ledger; every later one finds it made
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(opts.rounds):
            for name, argv in commands.items():
                times[name].append(_timed(argv, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["baseline"]
    for name, value in medians.items():
        print(f"{name:<9} median {value * 1000:7.1f} ms  ({value / base:5.1f}× python -c pass)")
    result: dict[str, float | int] = {f"{n}_ratio": round(medians[n] / base, 2) for n in ("help", "submit", "list")}
    result |= {f"{n}_ms": round(v * 1000, 1) for n, v in medians.items()}
    result["rounds"] = opts.rounds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
