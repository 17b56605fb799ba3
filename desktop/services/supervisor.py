"""Keeps one worker serving this JOBDECK_HOME: starts it with QProcess, notices a crash, restarts it with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from engine.config import SHUTDOWN_GRACE_S, Paths
from engine.events.client import read_worker_info
from engine.executable import jobdeck_command

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_AFTER_S = 60.0  # a worker that ran this long resets the backoff
START_TIMEOUT_S = 30.0

log = logging.getLogger(__name__)


class WorkerSupervisor(QObject):
    """A small wrapper around the worker process; the event stream, not this class, tracks connectivity.

    The worker is started detached (``QProcess.startDetached``) so that "keep running in the background" on quit
    is possible; liveness is then followed through ``runtime/worker.json`` and its pid, checked off the GUI thread.
    """

    started = Signal(int)  # pid of the worker now serving this data folder
    finished = Signal()  # it stopped because we (or the operator) asked
    crashed = Signal(str)  # it died unexpectedly; the message says what happens next
    state_changed = Signal(str)  # starting | running | stopping | stopped | crashed

    def __init__(
        self,
        paths: Paths,
        *,
        command: list[str] | None = None,
        autostart: bool = True,
        poll_ms: int = 500,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.command = command or jobdeck_command("worker")
        self.autostart = autostart
        self.state = "stopped"
        self.pid: int | None = None
        self.owned = False  # True when this GUI launched the worker
        self.restarts = 0
        self._user_stopped = False
        self._launched_at = 0.0
        self._console_from = 0  # where the console's text of the worker launched last begins
        self._running_since = 0.0
        self._checking = False
        self._task: asyncio.Future[None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._on_timeout)
        self._restart_timer = QTimer(self)
        self._restart_timer.setSingleShot(True)
        self._restart_timer.timeout.connect(self._on_restart_timer_timeout)

    # ------------------------------------------------------------------ public
    def begin(self) -> None:
        """Adopt a running worker or start one; then keep watching."""
        self._timer.start()
        self._schedule_check()

    def start(self) -> bool:
        """Launch the worker detached; output goes to logs/worker-console.log."""
        self._user_stopped = False
        self._restart_timer.stop()
        process = QProcess(self)
        process.setProgram(self.command[0])
        process.setArguments(self.command[1:])
        process.setWorkingDirectory(str(self.paths.root))
        console = str(self._console)
        with contextlib.suppress(OSError):
            self._console_from = self._console.stat().st_size
        process.setStandardOutputFile(console, QProcess.OpenModeFlag.Append)
        process.setStandardErrorFile(console, QProcess.OpenModeFlag.Append)
        ok = bool(process.startDetached())
        process.deleteLater()
        if not ok:
            self._crash(f"could not start the worker ({' '.join(self.command)})")
            return False
        self.owned = True
        self._launched_at = time.monotonic()
        self._set_state("starting")
        self._timer.start()
        return True

    async def stop(self, shutdown: Callable[[], Awaitable[Any]] | None = None) -> bool:
        """Graceful stop: the ``shutdown`` control command if given, else SIGTERM; SIGKILL after the grace period."""
        self._user_stopped = True
        self._restart_timer.stop()
        pid = self.pid
        if pid is None:
            info = await self._worker_info_once_started()
            pid = int(info["pid"]) if info else None
        if pid is None:
            self._set_state("stopped")
            return True
        self._set_state("stopping")
        sent = False
        if shutdown is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(shutdown(), 5.0)
                sent = True
        if not sent:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_GRACE_S + 10.0
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(_alive, pid):
                break
            await asyncio.sleep(0.1)
        else:
            with contextlib.suppress(OSError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        self.pid = None
        self.owned = False
        self._set_state("stopped")
        self.finished.emit()
        return True

    @property
    def _console(self) -> Path:
        return self.paths.logs / "worker-console.log"

    def _console_says(self) -> str:
        """The last of the one-line failures (``jobdeck: …``) the worker launched last wrote to its console."""
        try:
            with self._console.open("rb") as fh:
                fh.seek(max(self._console_from, fh.seek(0, os.SEEK_END) - 4096))
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        said = [line for line in lines if line.startswith("jobdeck")]
        return said[-1] if said else ""

    async def _worker_info_once_started(self) -> dict[str, Any] | None:
        """The running worker's info; a worker launched but not yet serving (a stop right after the window opened)
        is waited for, up to its start-up time-out, so that it is stopped rather than left running unowned."""
        while True:
            info = await asyncio.to_thread(read_worker_info, self.paths)
            launched_ago = time.monotonic() - self._launched_at
            if info is not None or self.state != "starting" or launched_ago > START_TIMEOUT_S:
                return info
            await asyncio.sleep(0.1)

    def shutdown_watch(self) -> None:
        """Stop watching (the app is quitting); the worker itself is left as it is, and none is started any more."""
        self.autostart = False
        self._timer.stop()
        self._restart_timer.stop()

    # ------------------------------------------------------------------ watching
    def _on_timeout(self) -> None:
        self._schedule_check()

    def _schedule_check(self) -> None:
        if not self._checking:
            self._checking = True
            self._task = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        try:
            info = await asyncio.to_thread(read_worker_info, self.paths)
        finally:
            self._checking = False
        self._apply(info)

    def _apply(self, info: dict[str, Any] | None) -> None:
        now = time.monotonic()
        if self.state == "stopping":
            return  # ``stop`` owns the state until the worker has gone
        if info is not None:
            pid = int(info["pid"])
            if self.state != "running" or pid != self.pid:
                self.pid = pid
                self._running_since = now
                how = "started by this window" if self.owned else "found running; left running when the window closes"
                log.info("worker pid %d serves %s (%s)", pid, self.paths.root, how)
                self._set_state("running")
                self.started.emit(pid)
            elif now - self._running_since > STABLE_AFTER_S:
                self.restarts = 0
            return
        if self.state == "starting":
            if now - self._launched_at > START_TIMEOUT_S:
                said = self._console_says()
                self._crash(
                    f"the worker did not start within {START_TIMEOUT_S:.0f} s"
                    + (f": {said}" if said else " (see logs/worker-console.log)")
                )
            return
        if self.state == "running":
            self.pid = None
            if self._user_stopped:
                self._set_state("stopped")
                self.finished.emit()
            else:
                self._crash("the worker stopped unexpectedly")
            return
        if self.state == "stopped" and self.autostart and not self._user_stopped:
            self.start()

    def _crash(self, reason: str) -> None:
        self.pid = None
        delay = BACKOFF_S[min(self.restarts, len(BACKOFF_S) - 1)]
        self.restarts += 1
        self._set_state("crashed")
        if self.autostart and not self._user_stopped:
            self._restart_timer.start(int(delay * 1000))
            self.crashed.emit(f"{reason}; restarting it in {delay:.0f} s")
        else:
            self.crashed.emit(reason)

    def _on_restart_timer_timeout(self) -> None:
        if not self._user_stopped and self.state in ("crashed", "stopped"):
            self.start()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)


def _alive(pid: int) -> bool:
    from engine.events.client import pid_alive

    return pid_alive(pid)
