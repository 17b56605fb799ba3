"""The real window (``main.py`` under the offscreen Qt platform) stopped by Ctrl+C or SIGTERM: it closes cleanly,
stops the worker it started itself, and leaves alone a worker it found already running. And a worker that cannot
start is reported in the window with the one line it gave."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_gui_support import *  # noqa: F403  (fixtures)
from workerproc import ROOT, WorkerProcess

WAIT_S = 60.0


class Window:
    """``jobdeck`` with no command, as a child process; its stderr kept in a file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.stderr_path = home.parent / "window-stderr.log"
        self.adopted: int | None = None  # a worker the test started, which it stops itself
        env = {
            **os.environ,
            "JOBDECK_HOME": str(home),
            "JOBDECK_KEYRING": "memory",
            "QT_QPA_PLATFORM": "offscreen",
            "PYTHONPATH": str(ROOT),
        }
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "main.py")], env=env, stdout=subprocess.DEVNULL, stderr=err
            )

    def serving(self, how: str) -> int:
        """The pid of the worker the window reports serving, once its log says ``how`` it came to it."""
        log = self.home / "logs" / "gui.log"
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            text = log.read_text(errors="replace") if log.exists() else ""
            for line in text.splitlines():
                if "serves" in line and how in line:
                    return int(line.split("worker pid ")[1].split()[0])
            time.sleep(0.1)
        raise AssertionError(f"the window never reported a worker {how}:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> None:
        """Kill the window if it is still up, and any worker it left behind in its data folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
            left = json.loads((self.home / "runtime" / "worker.json").read_text())["pid"]
            if left != self.adopted:
                psutil.Process(left).kill()


@pytest.fixture
def window(jobdeck_home: Path) -> Iterator[Window]:
    win = Window(jobdeck_home)
    try:
        yield win
    finally:
        win.close()


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a detached worker's parent may be slow to reap it)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_closes_the_window_and_stops_the_worker_it_started(window: Window, sig: signal.Signals) -> None:
    worker_pid = window.serving("started by this window")
    window.proc.send_signal(sig)
    status = window.proc.wait(WAIT_S)
    assert status == 0, window.stderr()
    assert "Traceback" not in window.stderr() and "KeyboardInterrupt" not in window.stderr(), window.stderr()
    assert gone(worker_pid), f"the worker {worker_pid} the window started is still running"
    assert not (window.home / "runtime" / "worker.json").exists()
    for log in ("gui.log", "worker-console.log", "worker.log"):  # the window's umask reaches the worker it starts
        assert stat.S_IMODE((window.home / "logs" / log).stat().st_mode) == 0o600, log


def test_a_worker_found_running_is_left_alone(jobdeck_home: Path) -> None:
    worker = WorkerProcess(jobdeck_home)
    worker.start()
    win = Window(jobdeck_home)
    win.adopted = worker.pid
    try:
        assert win.serving("found running") == worker.pid
        win.proc.send_signal(signal.SIGTERM)
        assert win.proc.wait(WAIT_S) == 0, win.stderr()
        assert "Traceback" not in win.stderr() and "destroyed but it is pending" not in win.stderr(), win.stderr()
        assert worker.proc is not None and worker.proc.poll() is None, "the window stopped a worker it did not start"
        assert worker.info() is not None and worker.info()["pid"] == worker.pid  # type: ignore[index]
    finally:
        win.close()
        worker.stop()


def test_a_worker_that_cannot_start_is_reported_in_its_own_words(
    qtbot: Any, aloop: Any, jobdeck_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's message names the cause the worker gave (here a foreign file at the ledger's path), not only
    "did not start"."""
    from desktop.services import supervisor as supervisor_module
    from desktop.services.supervisor import WorkerSupervisor
    from engine.config import Paths

    ledger = jobdeck_home / "jobdeck.db"
    ledger.write_text("not a database\n" * 100)
    (jobdeck_home / "logs").mkdir()
    (jobdeck_home / "logs" / "worker-console.log").write_text("jobdeck: an older launch's failure\n")
    monkeypatch.setattr(supervisor_module, "START_TIMEOUT_S", 8.0)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    sup = WorkerSupervisor(Paths(jobdeck_home), command=[sys.executable, str(ROOT / "main.py"), "worker"])
    messages: list[str] = []
    sup.crashed.connect(messages.append)
    sup.autostart = True
    sup.begin()
    try:
        qtbot.waitUntil(lambda: bool(messages), timeout=30_000)
    finally:
        sup.autostart = False
        sup.shutdown_watch()
    assert str(ledger) in messages[0] and "jobdeck db recover" in messages[0], messages
    assert "older launch" not in messages[0]
