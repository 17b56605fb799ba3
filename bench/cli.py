"""Command start-up benchmark: `--help`, `submit` and `list` against a bare `python -c pass` on the same machine.

    python bench/cli.py [--rounds N]

Each round runs the baseline and each command once, alternating, so that machine load falls on both alike; each
figure is the median over the rounds. `submit` and `list` run twice per round against a fresh data folder
(JOBDECK_HOME): with a worker serving it (`submit_ratio`, `list_ratio`: the command goes through the worker's
control channel) and with none (`submit_local_ratio`, `list_local_ratio`: the command opens the ledger itself).
The job is scheduled a year ahead, so the worker stays idle while commands are timed. Bytecode is cached in a
temporary folder, as an installed package has it, whatever PYTHONDONTWRITEBYTECODE says. The last line is one JSON
object: {"help_ratio", "submit_ratio", "list_ratio", "submit_local_ratio", "list_local_ratio", ...}.
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
LATER = ["--at", f"{time.gmtime().tm_year + 1}-01-01T00:00Z"]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def _start_worker(env: dict[str, str], home: str) -> subprocess.Popen[bytes]:
    worker = subprocess.Popen([sys.executable, MAIN, "worker"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    info = Path(home) / "runtime" / "worker.json"
    deadline = time.monotonic() + 30
    while not info.exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the worker did not start")
        time.sleep(0.05)
    return worker


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    worker.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as pyc:
        env = {**os.environ, "JOBDECK_HOME": home, "PYTHONPYCACHEPREFIX": pyc}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        submit = [sys.executable, MAIN, "submit", "send_email", *SUBMIT_PARAMS, *LATER]
        lst = [sys.executable, MAIN, "list"]
        commands = {
            "baseline": [sys.executable, "-c", "pass"],
            "help": [sys.executable, MAIN, "--help"],
            "submit": submit,
            "list": lst,
        }
        local = {"submit_local": submit, "list_local": lst}
        for argv in (*commands.values(), *local.values()):  # makes the ledger and every bytecode file
            _timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in (*commands, "baseline_local", *local)}
        worker = _start_worker(env, home)
        try:
            for _ in range(opts.rounds):
                for name, argv in commands.items():
                    times[name].append(_timed(argv, env))
        finally:
            _stop_worker(worker)
        for _ in range(opts.rounds):
            for name, argv in {"baseline_local": commands["baseline"], **local}.items():
                times[name].append(_timed(argv, env))
    medians = {name: statistics.median(values) for name, values in times.items()}

    def base(name: str) -> float:  # each phase against its own baseline: the load may change between them
        return medians["baseline_local" if name.endswith("_local") else "baseline"]

    for name, value in medians.items():
        print(f"{name:<14} median {value * 1000:7.1f} ms  ({value / base(name):5.1f}× python -c pass)")
    names = ("help", "submit", "list", "submit_local", "list_local")
    result: dict[str, float | int] = {f"{n}_ratio": round(medians[n] / base(n), 2) for n in names}
    result |= {f"{n}_ms": round(v * 1000, 1) for n, v in medians.items()}
    result["rounds"] = opts.rounds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
