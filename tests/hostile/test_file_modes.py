"""Another local user reads nothing of Jobdeck's: the data folder and its folders 0700, every file in them 0600.

Each file is read as ``nobody`` (``runuser``) from a data folder inside a 0711 folder, which ``nobody`` may pass
through but not list: so a file's own mode, and its folders', are what the read meets. A 0644 canary beside the
data folder shows that such a read does succeed when a mode allows it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import in_ci
from workerproc import ROOT, WorkerProcess

OTHER_USER = "nobody"
EMAIL = ("submit", "send_email", "--param", "recipient=a@example.com", "--param", "subject=s", "--param", "body=b")


@pytest.fixture
def passable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 0711 folder (pytest's own temporary folders are 0700, which would hide every mode from the test)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        reason = "reading as another user needs root and runuser"
        pytest.fail(f"{reason} (CI runs as root)", pytrace=False) if in_ci() else pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="jobdeck-modes-"))
    folder.chmod(0o711)
    for name in ("JOBDECK_DATABASE_URL", "AWS_STORAGE_BUCKET_NAME", "JOBDECK_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def jobdeck(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**run_env, **(env or {})},
    )
    assert out.returncode == 0, out.stderr
    return out


def readable_by_other_user(path: Path) -> bool:
    command = ["ls", str(path)] if path.is_dir() else ["cat", str(path)]
    return subprocess.run(["runuser", "-u", OTHER_USER, "--", *command], capture_output=True).returncode == 0


def assert_private(home: Path) -> list[Path]:
    """Every folder 0700 and every file 0600 (or stricter), none readable by the other user; the files seen."""
    files: list[Path] = []
    for folder, _dirs, names in os.walk(home):
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        assert mode == 0o700, f"{folder} is {mode:o}"
        assert not readable_by_other_user(Path(folder)), folder
        for name in names:
            path = Path(folder) / name
            assert not readable_by_other_user(path), path
            if path.is_symlink():
                continue  # a link has no mode of its own; what it points to is not Jobdeck's to change
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            assert mode & 0o077 == 0, f"{path} is {mode:o}"
            files.append(path)
    return files


def the_canary_is_readable(passable: Path) -> None:
    canary = passable / "canary"
    canary.write_text("public")
    canary.chmod(0o644)
    assert readable_by_other_user(canary), "the other user cannot read even a 0644 file: this test would prove nothing"


def test_every_file_a_running_worker_and_the_cli_make_is_private(passable: Path) -> None:
    the_canary_is_readable(passable)
    home = passable / "home"
    source = passable / "private.csv"
    source.write_text("salary,name\n")
    source.chmod(0o600)
    worker = WorkerProcess(home)
    worker.start()
    try:
        jobdeck(home, "config", "set", "smtp_host", "mail.example.com")
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        jobdeck(home, *EMAIL, "--at", later)
        jobdeck(home, "upload", str(source), "--bucket", "jobdeck-modes", "--at", later)  # staged, waiting
        files = {p.relative_to(home).as_posix() for p in assert_private(home)}
    finally:
        worker.stop()
    expected = {
        "jobdeck.db",
        "jobdeck.db-wal",
        "jobdeck.db-shm",
        "jobdeck.db.delivered",
        "jobdeck.db.delivered.courier-lock",
        "config.json",
        "logs/worker.log",
    }
    expected |= {"runtime/worker.json"}
    assert expected <= files, files
    assert any(f.startswith("spool/") and f.endswith("/private.csv") for f in files), files
    assert_private(home)  # and after the worker's stop


def test_files_left_readable_by_an_older_version_are_made_private_at_start(passable: Path) -> None:
    home = passable / "home"
    elsewhere = passable / "ledgers"
    elsewhere.mkdir()
    url = f"sqlite:///{elsewhere / 'shared.db'}"
    jobdeck(home, *EMAIL, env={"JOBDECK_DATABASE_URL": url})
    jobdeck(home, "config", "set", "smtp_host", "mail.example.com")
    outside = passable / "not-ours.txt"  # a link in the data folder must not make Jobdeck change its target
    outside.write_text("left as it is")
    outside.chmod(0o644)
    (home / "link").symlink_to(outside)
    for folder, _dirs, names in os.walk(home):  # as an older version under umask 022 left them
        os.chmod(folder, 0o755)
        for name in names:
            if not (Path(folder) / name).is_symlink():
                os.chmod(Path(folder) / name, 0o644)
    (elsewhere / "shared.db").chmod(0o644)
    assert readable_by_other_user(home / "config.json")

    jobdeck(home, "list", env={"JOBDECK_DATABASE_URL": url})

    assert_private(home)
    assert stat.S_IMODE((elsewhere / "shared.db").stat().st_mode) == 0o600
    assert not readable_by_other_user(elsewhere / "shared.db")
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
