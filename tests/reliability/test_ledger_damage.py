"""The ledger under power cuts and damaged files: what a user was told survives, and a damaged or foreign file stops
every command with one line, exit 1, while `jobdeck db recover` saves what can be read. (That ids are never handed
out twice is in test_ledger.py, on SQLite and PostgreSQL.)"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from workerproc import ROOT

from engine.storage.repository import Ledger

EMAIL = {"recipient": "a@example.com", "subject": "Hello", "body": "Hi there"}
SUBMIT = ("submit", "send_email", *(f"--param={key}={value}" for key, value in EMAIL.items()))
Completed = subprocess.CompletedProcess[str]
FRAME_HEADER = 24  # a WAL frame is this header and one page

# Creates jobs until killed, printing each id once `create` has returned: the moment a user is told.
WRITER = """
from engine.config import Paths
from engine.credentials.store import MemoryStore
from engine.operations import Operations

ops = Operations(Paths(), store=MemoryStore())
ops.after_enqueue = None
while True:
    print(ops.create("send_email", {"recipient": "a@example.com", "subject": "Hello", "body": "Hi"})["id"], flush=True)
"""


def cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Completed:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(home, env),
    )


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", "PYTHONPATH": str(ROOT)}
    return {**env, **(extra or {})}


def assert_one_line_failure(result: Completed, names: Path) -> str:
    """Exit 1 and a single line that names the file: no traceback, nothing else."""
    said = (result.stderr + result.stdout).strip()
    assert result.returncode == 1, said
    assert "Traceback" not in said and len(said.splitlines()) == 1, said
    assert str(names) in said, said
    return said


def digest(*paths: Path) -> list[str | None]:
    """The files' contents; None for one that is missing or empty (a read-only look may leave an empty WAL)."""
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() and p.stat().st_size else None for p in paths]


def ids_in(db: Path) -> list[int]:
    with connect(db) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone() is None:
            return []  # the power cut took the schema too
        return [row[0] for row in conn.execute("SELECT id FROM jobs ORDER BY id")]


def connect(db: Path | str, **options: Any) -> contextlib.closing[sqlite3.Connection]:
    """A connection closed at the end of the block. (``with sqlite3.connect()`` only commits: a connection left to the
    garbage collector keeps this process's view of the WAL index, which a power cut here has deleted.)"""
    return contextlib.closing(sqlite3.connect(db, isolation_level=None, **options))


def wal_of(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


# ---------------------------------------------------------------------------------------------- power cut
@pytest.fixture(scope="module")
def walsync_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LD_PRELOAD library that logs WAL writes and syncs (see walsync_shim.c), built for this run."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sys.platform.startswith("linux"):
        reason = "the power-cut test needs Linux and a C compiler (cc) for its LD_PRELOAD shim"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("shim") / "walsync_shim.so"
    source = Path(__file__).with_name("walsync_shim.c")
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(source), "-ldl"], check=True)
    return out


def cut_power(db: Path, sync_log: Path) -> str:
    """Make the WAL what a power cut could leave: everything synced is kept, and it ends half-way through the first
    frame written after the last sync (torn), or, if everything was synced, with half a frame of a write that had
    begun. The shared-memory index is lost too. Returns what was done, for the failure message."""
    lines = sync_log.read_text().splitlines()
    last_sync = max((i for i, line in enumerate(lines) if line == "s"), default=-1)
    unsynced = [int(line.split()[1]) for line in lines[last_sync + 1 :] if line.startswith("w ")]
    with connect(f"file:{db}?immutable=1", uri=True) as conn:
        half_frame = (FRAME_HEADER + conn.execute("PRAGMA page_size").fetchone()[0]) // 2
    wal = wal_of(db)
    size = wal.stat().st_size
    if unsynced:
        cut = min(min(unsynced) + half_frame, size)
        os.truncate(wal, cut)
        done = f"WAL cut from {size} to {cut} bytes ({len(unsynced)} unsynced writes from offset {min(unsynced)})"
    else:
        with wal.open("ab") as f:
            f.write(os.urandom(half_frame))
        done = f"every write was synced: half a frame of garbage appended to the {size}-byte WAL"
    db.with_name(db.name + "-shm").unlink(missing_ok=True)
    return done


def write_until_power_cut(home: Path, shim: Path, sync_log: Path, jobs: int) -> tuple[list[int], str]:
    """Run a writer until it has printed ``jobs`` ids, kill -9 it, and cut the power (see ``cut_power``). Returns
    every id it printed (each was told to a user) and what the cut did."""
    env = _env(home, {"LD_PRELOAD": str(shim), "WAL_SYNC_LOG": str(sync_log)})
    writer = subprocess.Popen([sys.executable, "-c", WRITER], env=env, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    acknowledged = []
    try:
        while len(acknowledged) < jobs:
            line = writer.stdout.readline()
            assert line, f"the writer stopped after {len(acknowledged)} jobs"
            acknowledged.append(int(line))
        _while_nothing_unsynced(sync_log)
    finally:
        writer.send_signal(signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
    acknowledged += [int(line) for line in rest.split()]  # printed before the kill: told to the user as well
    return acknowledged, cut_power(home / "jobdeck.db", sync_log)


def _while_nothing_unsynced(sync_log: Path, patience_s: float = 2.0) -> None:
    """Wait (a little) for a moment when the WAL has writes not yet synced, a commit under way: the cut is harshest
    then. A writer that happens to be between commits is cut all the same."""
    deadline = time.monotonic() + patience_s
    with sync_log.open("rb") as log:
        while time.monotonic() < deadline:
            log.seek(max(0, sync_log.stat().st_size - 64))
            if log.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].startswith(b"w "):
                return


@pytest.mark.parametrize(
    ("cuts", "jobs"),
    [pytest.param(1, 40, id="short"), pytest.param(10, 300, id="long", marks=pytest.mark.long)],
)
def test_acknowledged_jobs_survive_power_cuts_that_tear_the_wal(
    tmp_path: Path, walsync_shim: Path, cuts: int, jobs: int
) -> None:
    """A writer creates jobs until kill -9; the WAL then loses every write that was not synced, the last one torn;
    the next writer goes on from what is left. Every job whose id a writer printed (its create had returned) must be
    there, and no id may be printed twice. (300 jobs a writer pass the 200 commits that make a checkpoint due, so
    the long run also cuts a WAL that started over.)"""
    home = tmp_path / "home"
    home.mkdir()
    acknowledged: list[int] = []
    for cut in range(cuts):
        ids, done = write_until_power_cut(home, walsync_shim, tmp_path / f"wal-writes-{cut}.log", jobs)
        acknowledged += ids
        lost = sorted(set(acknowledged) - set(ids_in(home / "jobdeck.db")))
        assert not lost, f"power cut {cut + 1}: {len(lost)} acknowledged jobs lost ({done}): {lost}"
        assert len(set(acknowledged)) == len(acknowledged), f"power cut {cut + 1}: an acknowledged id was reused"

    after = cli(home, *SUBMIT, "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["id"] > max(acknowledged)
    assert cli(home, "db", "check").returncode == 0


# ---------------------------------------------------------------------------------------------- damaged files
def _leaves(data: bytes, page: int, page_size: int) -> list[int]:
    """The leaf pages under a table B-tree page, in key order (SQLite's file format, section 1.6)."""
    start = (page - 1) * page_size
    header = start + (100 if page == 1 else 0)
    kind = data[header]
    if kind == 0x0D:
        return [page]
    assert kind == 0x05, f"page {page} is not a table B-tree page"
    cells = int.from_bytes(data[header + 3 : header + 5], "big")
    children = []
    for i in range(cells):
        pointer = int.from_bytes(data[header + 12 + 2 * i : header + 14 + 2 * i], "big")
        children.append(int.from_bytes(data[start + pointer : start + pointer + 4], "big"))
    children.append(int.from_bytes(data[header + 8 : header + 12], "big"))
    return [leaf for child in children for leaf in _leaves(data, child, page_size)]


def damage_a_page_of_jobs(db: Path) -> None:
    """Overwrite a leaf page in the middle of the jobs table with garbage, as a failing disk might."""
    with connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    data = db.read_bytes()
    leaves = _leaves(data, root, page_size)
    assert len(leaves) >= 3, "too few jobs to damage one page in the middle"
    victim = leaves[len(leaves) // 2]
    with db.open("r+b") as f:
        f.seek((victim - 1) * page_size)
        f.write(bytes([0xFF]) * 16 + os.urandom(page_size - 16))


@pytest.fixture
def filled_home(tmp_path: Path) -> Path:
    """A data folder whose ledger holds 150 jobs, written through the real operations."""
    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    home = tmp_path / "home"
    ops = Operations(Paths(home), store=MemoryStore())
    try:
        for _ in range(150):
            ops.create("send_email", EMAIL)
    finally:
        ops.ledger.close()
    return home


def test_a_damaged_page_stops_commands_and_the_worker_with_one_line(filled_home: Path, tmp_path: Path) -> None:
    db = filled_home / "jobdeck.db"
    damage_a_page_of_jobs(db)
    before = digest(db, wal_of(db))
    for args in (("list",), SUBMIT, ("stats",)):
        said = assert_one_line_failure(cli(filled_home, *args), db)
        assert "damaged" in said and "jobdeck db recover" in said
    assert_one_line_failure(cli(filled_home, "worker", timeout=120), db)
    said = assert_one_line_failure(cli(filled_home, "db", "check"), db)
    assert "damaged" in said

    out = tmp_path / "saved" / "recovered.db"
    saved = cli(filled_home, "db", "recover", str(out))
    assert saved.returncode == 0, saved.stderr
    assert digest(db, wal_of(db)) == before  # the damaged file is left exactly as it was
    ids = ids_in(out)
    assert 130 <= len(ids) < 150 and set(ids) <= set(range(1, 151)) and ids[-1] == 150, ids  # one page lost
    with connect(out) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM job_events").fetchone()[0] == 150

    moved = {"JOBDECK_DATABASE_URL": f"sqlite:///{out}"}
    assert cli(filled_home, "db", "check", env=moved).returncode == 0
    after = cli(filled_home, *SUBMIT, "--json", env=moved)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["id"] == 151  # never an id the damaged ledger had used


def test_the_worker_checks_every_page_of_a_large_ledger_when_it_starts(filled_home: Path) -> None:
    """A command reads only the header and schema of a ledger past ``FULL_CHECK_MAX_BYTES``; the worker reads all."""
    from engine.storage.integrity import FULL_CHECK_MAX_BYTES

    db = filled_home / "jobdeck.db"
    with connect(db) as conn:  # pages the jobs do not need, to make the file large
        conn.execute("CREATE TABLE padding (blob BLOB)")
        conn.execute("INSERT INTO padding VALUES (zeroblob(?))", (FULL_CHECK_MAX_BYTES + 1,))
    damage_a_page_of_jobs(db)
    said = assert_one_line_failure(cli(filled_home, "worker", timeout=120), db)
    assert "damaged" in said and "jobdeck db recover" in said


def test_recovery_without_the_sqlite3_tool_reads_the_rows_around_the_damage(filled_home: Path, tmp_path: Path) -> None:
    from engine.storage.integrity import recover

    db = filled_home / "jobdeck.db"
    damage_a_page_of_jobs(db)
    saved = recover(db, tmp_path / "salvaged.db", tool="")
    assert saved.method == "row salvage" and 130 <= saved.jobs < 150 and saved.events == 150
    assert ids_in(tmp_path / "salvaged.db")[-1] == 150  # the rows after the damaged page were read as well


def test_a_file_that_is_not_sqlite_at_the_ledgers_path_stops_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = home / "jobdeck.db"
    db.write_text("these are my notes, not a database\n" * 200)
    before = digest(db)
    for args in (("list",), SUBMIT, ("db", "check")):
        said = assert_one_line_failure(cli(home, *args), db)
        assert "not a SQLite database" in said
    assert_one_line_failure(cli(home, "worker", timeout=120), db)
    said = assert_one_line_failure(cli(home, "db", "recover", str(tmp_path / "out.db")), db)
    assert not (tmp_path / "out.db").exists()
    assert digest(db) == before


def test_db_check_and_recover_on_a_sound_ledger(filled_home: Path, tmp_path: Path) -> None:
    checked = cli(filled_home, "db", "check")
    assert checked.returncode == 0 and "150 jobs, 150 events" in checked.stdout, checked.stdout + checked.stderr
    out = tmp_path / "copy.db"
    assert cli(filled_home, "db", "recover", str(out)).returncode == 0
    assert ids_in(out) == list(range(1, 151))
    again = cli(filled_home, "db", "recover", str(out))
    assert again.returncode == 2 and "OUTFILE" in again.stderr and str(out) in again.stderr


def test_db_check_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    Ledger(postgres_url).close()  # the schema exists
    checked = cli(tmp_path, "db", "check", env={"JOBDECK_DATABASE_URL": postgres_url})
    assert checked.returncode == 0 and "jobs" in checked.stdout, checked.stderr
    refused = cli(tmp_path, "db", "recover", str(tmp_path / "x.db"), env={"JOBDECK_DATABASE_URL": postgres_url})
    assert refused.returncode == 1 and "pg_dump" in refused.stderr and not (tmp_path / "x.db").exists()


def test_damage_met_while_the_worker_runs_stops_it_with_one_line(tmp_path: Path) -> None:
    """SQLite reports a damaged page to the running worker (a command reads it through the worker): the worker checks
    the ledger, stops, and says so in one line that names the file, exit 1."""
    from datetime import UTC, datetime, timedelta

    from engine.config import Paths
    from engine.credentials.store import MemoryStore
    from engine.operations import Operations

    home = tmp_path / "home"
    ops = Operations(Paths(home), store=MemoryStore())
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    try:
        for _ in range(150):
            ops.create("send_email", EMAIL, scheduled_time=later)
    finally:
        ops.ledger.close()
    db = home / "jobdeck.db"
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "worker"],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = home / "runtime" / "worker.json"
        deadline = time.monotonic() + 30
        while not (info.exists() and f'"pid": {worker.pid}' in info.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        damage_a_page_of_jobs(db)
        cli(home, "list", "--search", "nothing matches this")  # every row is read, through the worker
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 1
    assert "Traceback" not in out + err
    said = err.strip().splitlines()[-1]
    assert str(db) in said and "damaged" in said and "jobdeck db recover" in said, said
