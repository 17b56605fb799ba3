"""Uploads read only the regular file the user meant: hostile folders, special files, growing files, the ledger.

The worker is the real `jobdeck worker` process with AWS credentials in its environment (headless mode), the S3
side is moto's server, and commands are the real CLI: what an attacker's folder can make them read is what lands
in the bucket.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import S3Server
from test_gui_support import *  # noqa: F403  (fixtures)
from test_gui_support import QT_LOG_IGNORE, ops_request, run
from workerproc import ROOT, WorkerProcess

from engine.config import Paths, save_settings
from engine.errors import ValidationError

MiB = 1024**2
AWS_ENV = {"AWS_ACCESS_KEY_ID": S3Server.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3Server.SECRET_KEY}
# SQLite's unix VFS: every connection of a WAL database holds a read lock on these bytes of the database file
# for as long as it is open; a process that can write-lock them believes it is the last user, and on closing
# checkpoints and deletes the WAL.
SHARED_FIRST = 0x40000000 + 2
SHARED_SIZE = 510


# ------------------------------------------------------------------ helpers
class Deck:
    """A data folder with a real worker, the CLI and the control channel pointed at it."""

    def __init__(self, home: Path, s3: S3Server, bucket: str) -> None:
        self.home = home
        self.bucket = bucket
        self.s3 = s3
        home.mkdir(parents=True, exist_ok=True)
        save_settings(
            {
                "s3_endpoint_url": s3.endpoint_url,
                "s3_path_style": True,
                "s3_bucket": bucket,
                "multipart_threshold_bytes": 5 * MiB,
                "multipart_part_bytes": 5 * MiB,
                "multipart_concurrency": 1,
            },
            Paths(home),
        )
        self.worker = WorkerProcess(home, AWS_ENV)

    @property
    def ledger(self) -> Path:
        return self.home / "jobdeck.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.worker.env(), "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, timeout=60, env=env
        )

    def request(self, op: str, **args: Any) -> Any:
        """One control-channel request, as the window sends it (the test process never opens the ledger)."""
        from engine.events.client import WorkerClient

        async def call() -> Any:
            client = await WorkerClient.connect(Paths(self.home))
            try:
                return await client.request(op, **args)
            finally:
                await client.close()

        return asyncio.run(call())

    def wait_done(self, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("get", job_id=job_id)
            if job["status"] in ("succeeded", "failed"):
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish within {timeout} s: {job}")

    def objects(self) -> dict[str, bytes]:
        client = self.s3.client()
        listed = client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listed}

    def worker_holds_ledger(self) -> bool:
        """Whether some process (the worker: this one holds no connection) still read-locks the ledger."""
        fd = os.open(self.ledger, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST)
        except OSError:
            return True
        finally:
            os.close(fd)  # our lock, if we got one, goes with the descriptor
        return False

    def assert_ledger_intact(self) -> None:
        """The worker's locks survived: a CLI command cannot checkpoint and delete the WAL under it."""
        assert self.worker_holds_ledger(), "the worker lost its SQLite locks on the ledger"
        assert self.cli("list").returncode == 0
        assert (self.home / "jobdeck.db-wal").exists(), "a CLI command deleted the WAL under the running worker"
        assert self.worker.proc is not None and self.worker.proc.poll() is None


@pytest.fixture
def deck(tmp_path: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deck]:
    """A data folder inside a documents folder (so that a parent of it can be dropped), its worker running."""
    home = tmp_path / "documents" / "jobdeck-data"
    monkeypatch.setenv("JOBDECK_HOME", str(home))
    made = Deck(home, s3_server, s3_bucket)
    made.worker.start()
    try:
        assert made.worker_holds_ledger()  # the probe sees the worker's lock before any attack
        yield made
    finally:
        made.worker.stop()


def hostile_folder(base: Path) -> tuple[Path, Path]:
    """A folder whose links point at the worker's environment, a secret outside it, a folder outside it."""
    drop = base / "drop"
    outside = base / "outside"
    (drop / "notes").mkdir(parents=True)
    outside.mkdir()
    (drop / "a.txt").write_text("hello")
    (drop / "notes" / "n.txt").write_text("note")
    (outside / "shadow").write_text("root:$6$secret-hash")
    (outside / "inner").mkdir()
    (outside / "inner" / "x.txt").write_text("x")
    (drop / "alias.txt").symlink_to("a.txt")  # stays in the folder: followed
    (drop / "innocent.txt").symlink_to("/proc/self/environ")
    (drop / "notes" / "passwords.txt").symlink_to(outside / "shadow")
    (drop / "elsewhere").symlink_to(outside / "inner", target_is_directory=True)
    (drop / "broken.txt").symlink_to(base / "nothing-here")
    os.mkfifo(drop / "pipe")
    return drop, outside


# ------------------------------------------------------------------ links
def test_cli_upload_of_a_hostile_folder_follows_no_link_out_of_it(deck: Deck, tmp_path: Path) -> None:
    drop, outside = hostile_folder(tmp_path)
    (outside / "direct.txt").write_text("named on purpose")
    named_link = tmp_path / "report.txt"
    named_link.symlink_to(outside / "direct.txt")

    out = deck.cli("upload", str(drop), str(named_link), "--json")
    assert out.returncode == 0, out.stderr
    jobs = {j["parameters"]["key"]: j for j in json.loads(out.stdout)}
    assert set(jobs) == {"drop/a.txt", "drop/alias.txt", "drop/notes/n.txt", "report.txt"}
    # Links are resolved here, in the submitting process: the worker is handed the real files.
    assert jobs["drop/alias.txt"]["parameters"]["path"] == str(drop / "a.txt")
    assert jobs["report.txt"]["parameters"]["path"] == str(outside / "direct.txt")
    skipped = out.stderr
    assert f"skipped {drop / 'innocent.txt'}: link to a file outside the folder: not uploaded" in skipped
    assert f"skipped {drop / 'notes' / 'passwords.txt'}: link to a file outside the folder" in skipped
    assert f"skipped {drop / 'elsewhere'}: link to a folder: not uploaded" in skipped
    assert f"skipped {drop / 'broken.txt'}: broken link" in skipped
    assert f"skipped {drop / 'pipe'}: not a regular file (a named pipe)" in skipped

    for job in jobs.values():
        assert deck.wait_done(job["id"])["status"] == "succeeded"
    objects = deck.objects()
    assert objects == {
        "drop/a.txt": b"hello",
        "drop/alias.txt": b"hello",
        "drop/notes/n.txt": b"note",
        "report.txt": b"named on purpose",
    }
    assert not any(S3Server.SECRET_KEY.encode() in body for body in objects.values())


@QT_LOG_IGNORE
def test_drop_sheet_lists_links_out_of_the_folder_as_not_uploaded(
    qtbot: Any, make_window: Any, ops: Any, tmp_path: Path
) -> None:
    drop, _ = hostile_folder(tmp_path)
    window = make_window(begin=False)
    window.connection.request = ops_request(ops)
    sheet = window.drop_sheet([str(drop)])
    run(qtbot, sheet.scan_task)
    verdicts = {item.key: item.problem for item in sheet.model.items}
    assert verdicts == {
        "drop/a.txt": None,
        "drop/alias.txt": None,
        "drop/broken.txt": "broken link: not uploaded",
        "drop/elsewhere": "link to a folder: not uploaded (drop that folder itself to upload it)",
        "drop/innocent.txt": "link to a file outside the folder: not uploaded",
        "drop/notes/n.txt": None,
        "drop/notes/passwords.txt": "link to a file outside the folder: not uploaded",
        "drop/pipe": "not a regular file (a named pipe): not uploaded",
    }
    assert "5 files will not be uploaded" in sheet.warning.text()
    rows = {sheet.model.index(r, 0).data(): sheet.model.index(r, 2).data() for r in range(sheet.model.rowCount())}
    assert rows["drop/innocent.txt"] == "No — link to a file outside the folder: not uploaded"


# ------------------------------------------------------------------ special files
def test_the_workers_own_environment_named_directly_is_refused_at_submit(deck: Deck) -> None:
    with pytest.raises(ValidationError) as err:
        deck.request("upload", paths=["/proc/self/environ"])
    assert err.value.field == "path" and "/proc, /sys or device file" in err.value.message
    spooled = [p.read_bytes() for p in (deck.home / "spool").rglob("*") if p.is_file()]
    assert not any(S3Server.SECRET_KEY.encode() in body for body in spooled)
    assert deck.request("list")["total"] == 0


def test_a_fifo_swapped_in_after_the_check_fails_the_job_without_blocking_the_worker(
    deck: Deck, tmp_path: Path
) -> None:
    target = tmp_path / "empty.log"
    target.write_bytes(b"")
    out = deck.cli("upload", str(target), "--in-place", "--at", "2999-01-01T00:00Z", "--json")
    assert out.returncode == 0, out.stderr
    (job,) = json.loads(out.stdout)
    checked = target.stat()
    target.unlink()
    os.mkfifo(target)
    os.utime(target, ns=(checked.st_atime_ns, checked.st_mtime_ns))  # same size and time as what was checked
    deck.request("run_now", job_id=job["id"])
    done = deck.wait_done(job["id"], timeout=20)
    assert done["status"] == "failed" and done["attempts"] == 1  # permanent: never retried
    assert "not a regular file (a named pipe)" in done["error"]
    assert deck.request("status")["running"] == []  # no thread is left blocked in open()


def test_opening_a_fifo_for_an_upload_returns_at_once_with_a_refusal(tmp_path: Path) -> None:
    """What a request thread does at submission: it must never wait in open() for a writer that never comes."""
    import threading

    from engine.upload_paths import DataGuard, Refused, SourceFile

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def open_it() -> None:
        try:
            SourceFile.open(fifo, DataGuard(Paths(tmp_path / "data"))).close()
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(5)
    if opener.is_alive():  # unblock it, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("open() blocked on a FIFO")
    assert isinstance(outcome[0], Refused) and "named pipe" in str(outcome[0])


def test_an_in_place_upload_stops_when_the_file_grows_past_what_was_checked(deck: Deck, tmp_path: Path) -> None:
    save_settings({"bandwidth_limit_bytes_s": 4 * MiB}, Paths(deck.home))
    source = tmp_path / "growing.log"
    source.write_bytes(os.urandom(20 * MiB))
    out = deck.cli("upload", str(source), "--in-place", "--json")
    assert out.returncode == 0, out.stderr
    (job,) = json.loads(out.stdout)
    client = deck.s3.client()

    def parts_on_server() -> int:
        uploads = client.list_multipart_uploads(Bucket=deck.bucket).get("Uploads", [])
        return sum(
            len(client.list_parts(Bucket=deck.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []))
            for u in uploads
        )

    deadline = time.monotonic() + 60
    while parts_on_server() < 1:
        assert time.monotonic() < deadline, "no part reached the server"
        time.sleep(0.05)
    with source.open("ab") as fh:
        fh.write(b"appended while it was being uploaded")
    done = deck.wait_done(job["id"])
    assert done["status"] == "failed", done
    assert "grew past the 20,971,520 bytes checked at submission" in done["error"]
    assert "growing.log" not in deck.objects()


def test_staging_stops_at_the_upload_limit_when_the_file_grows_while_it_is_copied(
    ops: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    save_settings({"s3_bucket": "bkt", "max_upload_bytes": 2 * MiB}, Paths(ops.paths.root))
    source = tmp_path / "growing.bin"
    source.write_bytes(b"x" * MiB)
    real_uuid4 = uuid.uuid4

    def grow_then_name() -> uuid.UUID:
        # Called for the snapshot's folder name, after the checks: the file grows right then.
        with source.open("ab") as fh:
            fh.write(b"y" * 4 * MiB)
        monkeypatch.setattr(uuid, "uuid4", real_uuid4)
        return real_uuid4()

    monkeypatch.setattr(uuid, "uuid4", grow_then_name)
    with pytest.raises(ValidationError) as err:
        ops.upload([str(source)])
    assert err.value.field == "path" and "grew past the upload limit of 2,097,152 bytes" in err.value.message
    assert ops.list()["total"] == 0
    assert [p for p in ops.paths.spool.rglob("*") if p.is_file()] == []


# ------------------------------------------------------------------ the ledger
def test_no_upload_request_makes_the_worker_drop_its_ledger_locks(deck: Deck, tmp_path: Path) -> None:
    link = tmp_path / "ledger-link.db"
    link.symlink_to(deck.ledger)
    hard = tmp_path / "documents" / "ledger-copy.db"
    os.link(deck.ledger, hard)
    attempts = [deck.ledger, deck.home / "jobdeck.db-wal", deck.home / "jobdeck.db-shm", link, hard, deck.home]
    for path in attempts:
        for in_place in (False, True):
            with pytest.raises(ValidationError) as err:
                deck.request("upload", paths=[str(path)], in_place=in_place)
            assert err.value.field == "path" and "data folder" in err.value.message, (path, err.value)
    deck.assert_ledger_intact()


def test_cli_uploads_of_the_ledger_or_a_folder_holding_it_leave_the_worker_its_locks(deck: Deck) -> None:
    out = deck.cli("upload", str(deck.ledger), "--in-place")
    assert out.returncode == 2 and "path:" in out.stderr and "data folder" in out.stderr, out.stderr
    documents = deck.home.parent
    (documents / "letter.txt").write_text("dear ledger")
    os.link(deck.ledger, documents / "old-ledger.db")  # the ledger under another name
    out = deck.cli("upload", str(documents), "--in-place", "--json")
    assert out.returncode == 0, out.stderr
    assert f"skipped {deck.home}: in Jobdeck's data folder: not uploaded" in out.stderr
    assert f"skipped {documents / 'old-ledger.db'}: in Jobdeck's data folder: not uploaded" in out.stderr
    jobs = json.loads(out.stdout)
    assert [j["parameters"]["key"] for j in jobs] == ["documents/letter.txt"]
    assert deck.wait_done(jobs[0]["id"])["status"] == "succeeded"
    deck.assert_ledger_intact()


def test_a_path_that_leads_into_the_data_folder_at_run_time_is_refused_then(deck: Deck, tmp_path: Path) -> None:
    decoy_dir = tmp_path / "exports"
    decoy_dir.mkdir()
    decoy = decoy_dir / "jobdeck.db"
    decoy.write_bytes(deck.ledger.read_bytes())
    out = deck.cli("upload", str(decoy), "--in-place", "--at", "2999-01-01T00:00Z", "--json")
    assert out.returncode == 0, out.stderr
    (job,) = json.loads(out.stdout)
    # After the check, a folder on the stored path becomes a link into the data folder, and the file there is
    # given the decoy's size and time.
    os.utime(deck.ledger, ns=(decoy.stat().st_atime_ns, decoy.stat().st_mtime_ns))
    decoy.unlink()
    decoy_dir.rmdir()
    decoy_dir.symlink_to(deck.home, target_is_directory=True)
    deck.request("run_now", job_id=job["id"])
    done = deck.wait_done(job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert "data folder" in done["error"]
    deck.assert_ledger_intact()


# ------------------------------------------------------------------ keys and bucket names
@pytest.mark.parametrize(
    ("args", "field", "text"),
    [
        (["--key-prefix", "reports/../"], "key_prefix", "must not have '.' or '..' segments"),
        (["--key-prefix", "./reports/"], "key_prefix", "must not have '.' or '..' segments"),
        (["--key-prefix", "in\x1b[2J/"], "key_prefix", "must not contain control characters (found U+001B)"),
        (["--key-prefix", "in\u2028/"], "key_prefix", "must not contain control characters (found U+2028)"),
        (["--key-prefix", "é" * 520 + "/"], "key_prefix", "at most 1,024 bytes of UTF-8"),
        (["--key-prefix", "é" * 510 + "/"], "key", "at most 1,024 bytes of UTF-8; this one is 1,031"),
        (["--bucket", "My_Bucket"], "bucket", "not a valid bucket name"),
        (["--bucket", "ab"], "bucket", "not a valid bucket name"),
        (["--bucket", "my..bucket"], "bucket", "no two adjacent periods"),
        (["--bucket", "192.168.10.20"], "bucket", "must not look like an IP address"),
        (["--bucket", "xn--bucket"], "bucket", "S3 reserves the prefixes"),
        (["--bucket=-bucket"], "bucket", "not a valid bucket name"),
    ],
)
def test_bad_keys_and_bucket_names_are_refused_at_submit(
    jobdeck_home: Path, tmp_path: Path, args: list[str], field: str, text: str
) -> None:
    source = tmp_path / "report.txt"
    source.write_text("r")
    env = {**os.environ, "JOBDECK_HOME": str(jobdeck_home), "PYTHONPATH": str(ROOT), "JOBDECK_KEYRING": "memory"}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(ROOT / "main.py"), *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    out = cli(
        "upload", str(source), *([] if any(a.startswith("--bucket") for a in args) else ["--bucket", "reports"]), *args
    )
    assert out.returncode == 2, out.stderr
    flag = {"key_prefix": "--key-prefix", "bucket": "--bucket"}.get(field, field)  # named as the user typed it
    assert out.stderr.startswith(f"jobdeck: error: {flag}: ") and text in out.stderr, out.stderr
    assert out.stdout == ""
    assert json.loads(cli("list", "--json").stdout)["jobs"] == []


def test_a_key_with_a_dot_segment_is_refused_for_submit_too(jobdeck_home: Path, ops: Any, tmp_path: Path) -> None:
    source = tmp_path / "report.txt"
    source.write_text("r")
    with pytest.raises(ValidationError) as err:
        ops.create("upload_file", {"path": str(source), "bucket": "reports", "key": "a/./b.txt"})
    assert err.value.field == "key" and "'.' or '..' segments" in err.value.message
    assert ops.list()["total"] == 0


# A check of the checker: the probe really detects a process that holds the ledger.
def test_the_lock_probe_sees_a_reader(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "probe" / "jobdeck.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    probe = Deck.__new__(Deck)
    probe.home = db.parent
    code = "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); c.execute('select * from t').fetchall(); "
    holder = subprocess.Popen([sys.executable, "-c", code + "print(1, flush=True); time.sleep(30)", str(db)],
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        conn.close()
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"1"
        assert probe.worker_holds_ledger()
    finally:
        holder.kill()
        holder.wait()
    assert not probe.worker_holds_ledger()
