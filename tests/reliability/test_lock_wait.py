"""Another process holds the ledger's write lock (``BEGIN IMMEDIATE`` / ``BEGIN EXCLUSIVE``): commands that only read
go on unhindered; one that must write says on stderr that it waits, and for whom, and gives up with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from workerproc import ROOT

from engine.config import Paths
from engine.credentials.store import MemoryStore
from engine.operations import Operations

HOLD = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN " + sys.argv[2])
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    conn.rollback()
    """
)


def cli(home: Path, *args: str, wait_s: float = 3, timeout: float = 25) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBDECK_HOME": str(home), "PYTHONPATH": str(ROOT), "JOBDECK_KEYRING": "memory"}
    env["JOBDECK_LOCK_WAIT_S"] = str(wait_s)
    env.pop("JOBDECK_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def ledger_with_a_job(jobdeck_home: Path) -> Path:
    ops = Operations(Paths(jobdeck_home), store=MemoryStore())
    ops.create("send_email", {"recipient": "ops@example.com", "subject": "Report", "body": "."})
    ops.ledger.close()
    return jobdeck_home / "jobdeck.db"


def hold(database: Path, mode: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(database), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture(params=["IMMEDIATE", "EXCLUSIVE"])
def held(request: pytest.FixtureRequest, ledger_with_a_job: Path) -> Iterator[subprocess.Popen[str]]:
    holder = hold(ledger_with_a_job, request.param)
    yield holder
    release(holder)


def release(holder: subprocess.Popen[str]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)


@pytest.mark.parametrize("command", [["list"], ["show", "1"], ["stats"], ["types"], ["config", "show"]])
def test_commands_that_only_read_do_not_wait_for_the_write_lock(
    jobdeck_home: Path, held: subprocess.Popen[str], command: list[str]
) -> None:
    done = cli(jobdeck_home, *command, wait_s=2)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    if command[0] in ("list", "show"):
        assert "Report" in done.stdout


def test_a_write_waiting_for_the_lock_says_who_holds_it_then_gives_up_in_one_line(
    jobdeck_home: Path, ledger_with_a_job: Path
) -> None:
    holder = hold(ledger_with_a_job, "IMMEDIATE")
    try:
        done = cli(jobdeck_home, "cancel", "1", wait_s=3)
    finally:
        release(holder)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 2, done.stderr
    waiting, gave_up = lines
    assert "waiting for the write lock" in waiting and str(ledger_with_a_job) in waiting
    assert f"pid {holder.pid}" in waiting
    assert gave_up.startswith("jobdeck: gave up after 3 s") and f"pid {holder.pid}" in gave_up
    assert "canceled" not in cli(jobdeck_home, "show", "1").stdout  # nothing written


def test_a_write_that_waited_goes_through_once_the_lock_is_free(jobdeck_home: Path, ledger_with_a_job: Path) -> None:
    holder = hold(ledger_with_a_job, "EXCLUSIVE")
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT), "JOBDECK_KEYRING": "memory"}
    env.pop("JOBDECK_DATABASE_URL", None)
    command = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "cancel", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert command.stderr is not None
        waiting = command.stderr.readline()  # told after a second of waiting
        assert "waiting for the write lock" in waiting and f"pid {holder.pid}" in waiting
    finally:
        release(holder)
    out, err = command.communicate(timeout=25)
    assert command.returncode == 0, err
    assert out.strip() == "job 1 is canceled" and err == ""
