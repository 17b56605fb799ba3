"""Every environmental failure reaches the user as one line (what failed, where, what to do), never a traceback.

Each case is the real fault: a full tmpfs mounted here, a damaged ledger file, a folder this user cannot search
(root without CAP_DAC_OVERRIDE through ``setpriv``, since root reads any file), a port already taken, a reader
that closed its end of the pipe. (A ledger another process keeps locked: ``test_lock_wait.py``.)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import in_ci
from workerproc import ROOT, WorkerProcess

TIMEOUT_S = 120


def jobdeck(
    home: Path, *args: str, prefix: Sequence[str] = (), stdout: int = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*prefix, sys.executable, str(ROOT / "main.py"), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
    )


def one_line(out: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """The one line on stderr, after checking the exit status and that it says what it must."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert out.returncode == status, (out.returncode, out.stderr)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


SUBMIT = ("submit", "send_email", "--param", "recipient=a@example.com", "--param", "subject=s", "--param", "body=b")


def submit(home: Path) -> subprocess.CompletedProcess[str]:
    return jobdeck(home, *SUBMIT)


def needs_root(what: str) -> None:
    if os.geteuid() != 0:
        if in_ci():
            pytest.fail(f"{what} needs root, and CI runs as root", pytrace=False)
        pytest.skip(f"{what} needs root")


# ------------------------------------------------------------------ a full disk
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    needs_root("mounting a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}"
        pytest.fail(message, pytrace=False) if in_ci() else pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Take every free block (tmpfs has no reserve for root)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = b"\0" * 4096
    try:
        while os.write(fd, block):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_names_the_disk_not_a_closed_database(small_disk: Path) -> None:
    home = small_disk / "home"
    assert submit(home).returncode == 0
    fill(small_disk)

    line = one_line(submit(home), 1, "is full", str(home / "jobdeck.db"), "free some space")
    assert "closed database" not in line

    (small_disk / "filler").unlink()
    assert submit(home).returncode == 0  # nothing was left half-done: it works again once there is room
    listed = json.loads(jobdeck(home, "list", "--json").stdout)["jobs"]
    assert [job["id"] for job in listed] == [2, 1]  # the refused submit wrote nothing, took no id


def test_the_worker_console_on_a_full_disk_is_one_line_per_failure(small_disk: Path, smtp_server: Any) -> None:
    """A scheduled job falls due while the disk is full: the worker keeps running, and says what it cannot write
    (the ledger, its log file) in single lines, a few times a second at most, not a traceback per attempt. Once
    there is room again, the job runs, once."""
    home = small_disk / "home"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port}))
    worker = WorkerProcess(home)
    worker.log_path = small_disk.parent / "worker-console.log"  # the console itself must not be on the full disk
    worker.start()
    try:
        at = datetime.now(UTC) + timedelta(seconds=15)
        out = jobdeck(home, *SUBMIT, "--at", at.isoformat(), "--json")
        assert out.returncode == 0, out.stderr
        job_id = json.loads(out.stdout)["id"]
        fill(small_disk)
        time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 3.0)  # due, and tried on a full disk
        (small_disk / "filler").unlink()
        smtp_server.wait_for(1, timeout=60)
        deadline = time.monotonic() + 60
        while json.loads(jobdeck(home, "show", str(job_id), "--json").stdout)["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not finish once the disk had room"
            time.sleep(0.5)
    finally:
        worker.stop()
    assert len(smtp_server.messages) == 1
    console = worker.output()
    assert "Traceback" not in console, console
    full = [line for line in console.splitlines() if "is full" in line]
    assert full and all(str(home / "jobdeck.db") in line for line in full), console
    assert len(full) < 50, f"{len(full)} lines: the scheduler retried without pausing"
    assert console.rstrip().endswith("stopped")


# ------------------------------------------------------------------ a damaged ledger
@pytest.mark.parametrize(
    "content",
    [b"these are someone's notes, not a database\n" * 100, bytes(range(256)) * 64],
    ids=["text", "binary"],
)
def test_a_damaged_or_foreign_file_at_the_ledger_path(jobdeck_home: Path, content: bytes) -> None:
    ledger = jobdeck_home / "jobdeck.db"
    ledger.write_bytes(content)
    for args in (["list"], list(SUBMIT), ["stats"]):
        one_line(jobdeck(jobdeck_home, *args), 1, str(ledger), "jobdeck db recover")
    assert ledger.read_bytes() == content  # left untouched for the user to recover

    out = jobdeck(jobdeck_home, "worker")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert str(ledger) in out.stderr.splitlines()[-1]


# ------------------------------------------------------------------ invalid worker options
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "argument --port: 99999 is out of range; allowed: 0–65535"),
        (["--port", "-1"], "argument --port: -1 is out of range; allowed: 0–65535"),
        (["--port", "http"], "argument --port: 'http' is not a whole number"),
        (["--concurrency", "-3"], "argument --concurrency: -3 is out of range; allowed: 1–64"),
        (["--concurrency", "0"], "argument --concurrency: 0 is out of range; allowed: 1–64"),
        (["--concurrency", "65"], "argument --concurrency: 65 is out of range; allowed: 1–64"),
    ],
)
def test_worker_options_out_of_range_exit_2_before_anything_is_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    one_line(jobdeck(home, "worker", *args), 2, message)
    assert not home.exists()


def test_a_port_in_use_is_one_line(jobdeck_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = jobdeck(jobdeck_home, "worker", "--port", str(port))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    assert str(port) in lines[-1] and "address already in use" in lines[-1] and "--port" in lines[-1]
    # a new ledger was made on the way: one line says so, none of Alembic's dozen
    assert len(lines) == 2 and "the ledger's schema is now at" in lines[0] and "alembic" not in out.stderr, lines


# ------------------------------------------------------------------ a folder this user cannot search
def unprivileged() -> list[str]:
    """Run as this user without the power to ignore file modes (root has it; the test then drops it)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is missing", pytrace=False) if in_ci() else pytest.skip("setpriv is missing")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(b"%PDF-1.4")
    folder.chmod(0)
    try:
        yield folder
    finally:
        folder.chmod(stat.S_IRWXU)


def test_a_file_in_a_folder_this_user_cannot_search(jobdeck_home: Path, locked_folder: Path) -> None:
    target = locked_folder / "report.pdf"
    out = jobdeck(jobdeck_home, "upload", str(target), "--bucket", "b", prefix=unprivileged())
    one_line(out, 2, f"path: {target}", "Permission denied")  # the path the user gave: invalid input


def test_a_data_folder_this_user_cannot_search(locked_folder: Path) -> None:
    home = locked_folder / "home"
    out = jobdeck(home, "list", prefix=unprivileged())
    one_line(out, 1, str(home), "Permission denied")


# ------------------------------------------------------------------ the reader went away
def test_a_closed_pipe_ends_quietly(jobdeck_home: Path) -> None:
    """``jobdeck list | head -1``: the reader chose to stop; no traceback and no "Exception ignored" noise."""
    assert submit(jobdeck_home).returncode == 0
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before it writes a byte: every write meets a closed pipe
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(TIMEOUT_S) == 128 + 13, stderr  # as a command killed by SIGPIPE, like cat
    assert stderr == ""


def test_head_reads_the_first_line_of_a_long_list(jobdeck_home: Path) -> None:
    """The shell form: a list longer than a pipe's buffer, of which ``head`` reads one line."""
    ledger = jobdeck_home / "jobdeck.db"
    assert submit(jobdeck_home).returncode == 0
    db = sqlite3.connect(ledger)  # many jobs, quickly: copies of the one just made
    try:
        names = ", ".join(r[1] for r in db.execute("PRAGMA table_info(jobs)") if r[1] != "id")
        for _ in range(10):
            db.execute(f"INSERT INTO jobs ({names}) SELECT {names} FROM jobs")
        db.commit()
    finally:
        db.close()
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT)}
    command = f"{sys.executable} {ROOT / 'main.py'} list --limit 1024 | head -1; echo status=${{PIPESTATUS[0]}} >&2"
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    assert out.stdout.startswith("    id  status")
    assert out.stderr.strip() == "status=141", out.stderr  # far more than a pipe holds: it met the closed pipe
