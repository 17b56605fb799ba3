"""The PyInstaller bundle, built from a clean copy of this tree and run as operators run it: CLI, worker and GUI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from servers import SmtpServer

from engine import __version__

ROOT = Path(__file__).resolve().parent.parent
SIZE_GOAL_BYTES = 200 * 1024**2
BUILD_TIMEOUT_S = 1200
# A bundle test spends most of its time in the one shared build; each test still gets the generous limit
# because whichever runs first pays for the build inside its setup.
pytestmark = [pytest.mark.bundle, pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]

# Settings and interpreter variables that must not reach the bundle: it has to run on what it carries.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "JOBDECK_DATABASE_URL", "JOBDECK_HOME")


@dataclass
class Bundle:
    source: Path  # the clean tree it was built from
    folder: Path  # dist/jobdeck
    exe: Path
    workdir: Path  # a directory outside any source tree to run it from

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        return {**env, "JOBDECK_HOME": str(home), "JOBDECK_KEYRING": "memory", **extra}

    def run(self, home: Path, *args: str, timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.exe), *args],
            env=self.env(home, **extra_env),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_ok(self, home: Path, *args: str) -> str:
        out = self.run(home, *args)
        assert out.returncode == 0, f"jobdeck {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
        return out.stdout


def _copy_clean_tree(dest: Path) -> None:
    """What `git add` would take: tracked files plus new, non-ignored ones; no venv, build output or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout (e.g. an unpacked archive): copy minus the usual debris
        ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "__pycache__", "*.egg-info", ".*_cache")
        shutil.copytree(ROOT, dest, ignore=ignore)
        return
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """Build once per run from a clean copy, with the venv's PyInstaller and a private PyInstaller cache."""
    base = tmp_path_factory.mktemp("bundle")
    source = base / "src"
    _copy_clean_tree(source)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PYINSTALLER_CONFIG_DIR"] = str(base / "pyinstaller-cache")
    log = base / "build.log"
    dirs = ["--distpath", str(base / "dist"), "--workpath", str(base / "build")]
    with log.open("wb") as out:
        build = subprocess.run(
            [sys.executable, "-m", "PyInstaller", "build.spec", "--noconfirm", "--clean", *dirs],
            cwd=source,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT_S,
        )
    assert build.returncode == 0, "PyInstaller failed:\n" + log.read_text(errors="replace")[-6000:]
    folder = base / "dist" / "jobdeck"
    exe = folder / ("jobdeck.exe" if sys.platform == "win32" else "jobdeck")
    assert exe.is_file(), f"no executable in {folder}"
    workdir = base / "run"
    workdir.mkdir()
    return Bundle(source, folder, exe, workdir)


def _bundle_files(bundle: Bundle) -> list[Path]:
    return [p for p in bundle.folder.rglob("*") if p.is_file() and not p.is_symlink()]


def test_version_comes_from_the_bundled_engine(bundle: Bundle, tmp_path: Path) -> None:
    assert bundle.run_ok(tmp_path, "--version").strip() == f"jobdeck {__version__}"


def test_types_lists_both_job_types_as_json(bundle: Bundle, tmp_path: Path) -> None:
    types = json.loads(bundle.run_ok(tmp_path, "types", "--json"))
    by_name = {t["name"]: t for t in types}
    assert {"send_email", "upload_file"} <= set(by_name)
    assert "recipient" in by_name["send_email"]["schema"]["properties"]


def test_bundle_carries_migrations_and_leaves_unused_parts_out(bundle: Bundle) -> None:
    files = _bundle_files(bundle)
    names = {p.relative_to(bundle.folder).as_posix() for p in files}
    assert any(n.endswith("engine/storage/migrations/versions/0001_initial.py") for n in names)
    assert any(n.endswith("engine/storage/migrations/env.py") for n in names)
    resources = [f.relative_to(bundle.source).as_posix() for f in (bundle.source / "resources").rglob("*.*")]
    assert resources
    assert [r for r in resources if not any(n.endswith(r) for n in names)] == []
    unwanted = ("QtWebEngine", "Qt6Qml", "Qt6Quick", "Qt63D", "QtQml", "QtQuick", "Qt3D", "tkinter", "tcl", "gtk-3")
    assert not [n for n in names if any(u in n for u in unwanted)]
    size = sum(p.stat().st_size for p in files)
    assert size <= SIZE_GOAL_BYTES, f"bundle is {size / 1024**2:.0f} MB, over the goal of {SIZE_GOAL_BYTES} bytes"


def test_bundled_keyring_reaches_a_real_secret_service(bundle: Bundle, tmp_path: Path, secret_service: Any) -> None:
    """Keyring finds its backends through entry points and hidden imports; a frozen app loses them silently."""
    env = {**secret_service.env, "JOBDECK_KEYRING": "keyring"}
    stored = subprocess.run(
        [str(bundle.exe), "credentials", "set", "smtp-password"],
        input="bundle-secret",
        env=bundle.env(tmp_path, **env),
        cwd=bundle.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stored.returncode == 0, stored.stderr
    status = bundle.run(tmp_path, "credentials", "status", **env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "SecretService" in status.stdout
    assert "smtp-password: set" in status.stdout


def test_bundled_cli_uses_postgresql(bundle: Bundle, tmp_path: Path, postgres_url: str) -> None:
    """The psycopg dialect and its binary libpq must be in the bundle; Alembic migrates the empty database."""
    out = bundle.run(tmp_path, "stats", "--json", JOBDECK_DATABASE_URL=postgres_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "total" in json.loads(out.stdout)


@pytest.fixture
def bundled_worker(bundle: Bundle, tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Path, Any]]:
    """A bundled `jobdeck worker` on a fresh home whose SMTP settings point at the test's aiosmtpd."""
    home = tmp_path / "home"
    bundle.run_ok(home, "config", "set", "smtp_host", smtp_server.host)
    bundle.run_ok(home, "config", "set", "smtp_port", str(smtp_server.port))
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [str(bundle.exe), "worker"], env=bundle.env(home), cwd=bundle.workdir, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        info_path = home / "runtime" / "worker.json"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if json.loads(info_path.read_text()).get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        output = (tmp_path / "worker.log").read_text(errors="replace")
        assert proc.poll() is None, f"bundled worker exited with {proc.returncode}:\n{output}"
        assert time.monotonic() < deadline, f"bundled worker did not start serving:\n{output}"
        yield home, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_bundled_worker_sends_an_email_job(
    bundle: Bundle, bundled_worker: tuple[Path, Any], smtp_server: SmtpServer
) -> None:
    home, proc = bundled_worker
    created = json.loads(
        bundle.run_ok(
            home,
            "submit",
            "send_email",
            "--param",
            "recipient=ops@example.com",
            "--param",
            "subject=From the bundle",
            "--param",
            "body=Sent by a frozen worker.",
            "--json",
        )
    )
    job: dict[str, Any] = created
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = json.loads(bundle.run_ok(home, "show", str(created["id"]), "--json"))
    assert job["status"] == "succeeded", job
    [mail] = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ("ops@example.com",)
    assert mail.message["Subject"] == "From the bundle"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def _stop_leftover_workers(home: Path, exe: Path) -> None:
    """The GUI starts its worker as a child; if it outlives the GUI, this test still owns it."""
    worker = _worker_of(home)
    with contextlib.suppress(OSError, psutil.Error):
        if worker and Path(worker.exe()).resolve() == exe.resolve():
            worker.terminate()
            worker.wait(20)


def _worker_of(home: Path) -> psutil.Process | None:
    try:
        return psutil.Process(json.loads((home / "runtime" / "worker.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def test_gui_starts_its_worker_by_rerunning_its_own_executable(bundle: Bundle, tmp_path: Path) -> None:
    home = tmp_path / "home"
    log = (tmp_path / "gui.log").open("wb")
    gui = subprocess.Popen(
        [str(bundle.exe), "gui"],
        env=bundle.env(home, QT_QPA_PLATFORM="offscreen"),
        cwd=bundle.workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    command: list[str] = []
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not command and gui.poll() is None and time.monotonic() < deadline:
            worker = _worker_of(home)
            with contextlib.suppress(psutil.Error):
                command = worker.cmdline() if worker else []
            time.sleep(0.1)
    finally:
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(gui.pid).children(recursive=True)
        gui.terminate()
        try:
            gui.wait(20)
        except subprocess.TimeoutExpired:
            gui.kill()
            gui.wait(10)
        _stop_leftover_workers(home, bundle.exe)
        for child in children:  # a worker that had not yet announced itself in worker.json
            with contextlib.suppress(psutil.Error):
                child.terminate()
                child.wait(20)
    output = (tmp_path / "gui.log").read_text(errors="replace")
    assert command, f"the bundled GUI started no worker (GUI exit status {gui.returncode}):\n{output}"
    assert Path(command[0]).resolve() == bundle.exe.resolve()
    assert command[1:2] == ["worker"]


def test_gui_starts_offscreen_and_exits_cleanly(bundle: Bundle, tmp_path: Path) -> None:
    app_source = (bundle.source / "desktop" / "app.py").read_text(encoding="utf-8")
    if "smoke-test" not in app_source:
        pytest.skip("desktop/app.py has no --smoke-test switch yet (to be added with the GUI)")
    home = tmp_path / "home"
    try:
        out = bundle.run(home, "gui", "--smoke-test", timeout=120, QT_QPA_PLATFORM="offscreen")
    finally:
        _stop_leftover_workers(home, bundle.exe)
    assert out.returncode == 0, f"GUI smoke test exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
