"""Commands through a running worker: the same operation, messages and results as in the command's own process,
without opening the ledger; and the fallback when no worker can be reached."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from workerproc import ROOT

EMAIL = ["send_email", "--param", "recipient=a@example.com", "--param", "subject=Hi", "--param", "body=Hello"]
LATER = ["--at", "2099-01-01T09:30"]  # the worker leaves the job alone: these tests look at the command only

# Runs one command as main.py does, then says on stderr whether the ledger's libraries were imported.
_PROBE = (
    "import sys, main\n"
    "status = main.main(sys.argv[1:])\n"
    "print('imported:', sorted(m for m in ('sqlalchemy', 'huey', 'pydantic') if m in sys.modules), file=sys.stderr)\n"
    "sys.exit(status)\n"
)


def _probe(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBDECK_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_submit_and_list_through_a_worker_never_open_the_ledger(
    jobdeck_home: Path, worker_factory: Callable[..., Any]
) -> None:
    worker_factory()
    made = _probe(jobdeck_home, "submit", *EMAIL, *LATER)
    assert made.returncode == 0, made.stderr
    assert made.stdout == "created job 1 (scheduled)\n"
    assert made.stderr == "imported: []\n"  # no SQLAlchemy, Huey or pydantic: the worker did the work
    listed = _probe(jobdeck_home, "list")
    assert listed.stderr == "imported: []\n"
    row = listed.stdout.splitlines()[1].split()
    assert row[:3] == ["1", "scheduled", "send_email"] and "a@example.com" in listed.stdout
    shown = _probe(jobdeck_home, "show", "1", "--json")
    assert shown.stderr == "imported: []\n" and json.loads(shown.stdout)["status"] == "scheduled"


BAD = [
    ["submit", "send_email", "--param", "recipient=nobody", "--param", "subject=x", "--param", "body=y"],
    ["submit", *EMAIL, "--at", "2020-01-01T00:00"],
    ["submit", *EMAIL, "--at", "tomorrow"],
    ["submit", *EMAIL, "--priority", "12"],
    ["submit", "nope"],
    ["list", "--type", "nope"],
    ["list", "--status", "done"],
    ["list", "--limit", "0"],
    ["show", "999"],
    ["retry", "1"],
    ["cancel", "--status", "failed", "--type", "nope"],
]


def test_errors_are_the_same_through_a_worker_and_without_one(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    assert jobdeck("submit", *EMAIL, *LATER).returncode == 0  # job 1, scheduled: `retry 1` is refused
    alone = [jobdeck(*args) for args in BAD]
    worker_factory()
    served = [jobdeck(*args) for args in BAD]
    for args, a, b in zip(BAD, alone, served, strict=True):
        assert (a.returncode, a.stderr) == (b.returncode, b.stderr) == (2, a.stderr), args
        assert a.stderr.startswith("jobdeck: error: ") and a.stderr.count("\n") == 1, a.stderr
        assert "Traceback" not in a.stderr + b.stderr


def test_a_time_without_offset_is_the_submitters_local_time(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    worker_factory(env={"TZ": "UTC"})
    made = jobdeck("submit", *EMAIL, "--at", "2099-01-01T09:30", "--json", extra_env={"TZ": "Asia/Tokyo"})
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["scheduled_time"] == "2099-01-01T00:30:00+00:00"  # 09:30 in Tokyo (UTC+9)


def test_a_worker_that_cannot_be_reached_leaves_the_command_to_do_it_itself(
    jobdeck: Callable[..., Any], jobdeck_home: Path
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = jobdeck_home / "runtime"
    runtime.mkdir()
    # A live process (this test's) that is no worker: its runtime file left behind, say, by a crash and pid reuse.
    (runtime / "worker.json").write_text(json.dumps({"pid": os.getpid(), "port": port, "token": "x" * 43}))
    made = jobdeck("submit", *EMAIL)
    assert made.returncode == 0 and made.stdout == "created job 1 (pending)\n", made.stderr
    assert "no worker is running" in made.stderr
    assert jobdeck("list", "--json").returncode == 0


@pytest.mark.parametrize("command", [["list"], ["stats"], ["show", "1"]])
def test_reads_through_a_worker_print_what_they_print_without_one(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any], command: list[str]
) -> None:
    assert jobdeck("submit", *EMAIL, *LATER).returncode == 0
    alone = jobdeck(*command)
    worker_factory()
    served = jobdeck(*command)
    assert served.returncode == alone.returncode == 0
    assert served.stdout == alone.stdout


def test_parameters_too_large_for_one_message_are_submitted_by_the_command_itself(
    jobdeck: Callable[..., Any], worker_factory: Callable[..., Any]
) -> None:
    worker_factory()
    # Two parameters at the command line's limit for one argument (128 KiB), 6 bytes a character in the control
    # channel's ASCII JSON: 1.4 MB, over its 1 MiB limit for a message.
    body = "\x01" * 120_000
    made = jobdeck("submit", *EMAIL, "--param", f"body={body}", "--param", f"html_body={body}", *LATER)
    assert (made.returncode, made.stdout, made.stderr) == (0, "created job 1 (scheduled)\n", "")
    shown = json.loads(jobdeck("show", "1", "--json").stdout)
    assert shown["parameters"]["body"] == body


def test_watch_from_now_asks_the_worker_where_now_is(
    jobdeck: Callable[..., Any], jobdeck_home: Path, worker_factory: Callable[..., Any]
) -> None:
    worker_factory()
    assert jobdeck("submit", *EMAIL, *LATER).returncode == 0
    code = (
        "import asyncio, sys\n"
        "from engine.paths import Paths\n"
        "from engine.watch import current_seq\n"
        "print(asyncio.run(current_seq(Paths())), 'sqlalchemy' in sys.modules)\n"
    )
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1 False\n", "")
