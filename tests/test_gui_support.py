"""Shared fixtures and helpers for the GUI tests: a qasync loop inside pytest-qt, windows, ops-backed requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["aloop", "gui_env", "make_window"]  # the fixtures; helpers are imported by name

# The offscreen platform warns that it cannot resize hints or raise windows; that says nothing about our code.
QT_LOG_IGNORE = pytest.mark.qt_log_ignore("This plugin does not support (propagateSizeHints|raise)")


@pytest.fixture
def aloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    """The app's asyncio loop driven by Qt's (qasync), so qtbot.waitUntil also runs our coroutines."""
    from desktop.event_loop import GuiEventLoop

    loop = GuiEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    qapp.processEvents()
    asyncio.events._set_running_loop(None)
    with contextlib.suppress(Exception):
        loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
        loop.close()
    asyncio.set_event_loop(None)


def run(qtbot: Any, awaitable: Awaitable[Any], timeout_ms: int = 30_000) -> Any:
    """Drive the Qt loop until the coroutine or future is done; its result (or exception)."""
    task = asyncio.ensure_future(awaitable)
    qtbot.waitUntil(task.done, timeout=timeout_ms)
    return task.result()


def ops_request(ops: Any) -> Callable[..., Awaitable[Any]]:
    """A control-channel stand-in that calls the real engine operations in a thread (as the worker does)."""

    from engine.events.control import OPERATIONS

    async def request(op: str, timeout: float | None = None, **args: Any) -> Any:
        method = ops
        for name in OPERATIONS.get(op, op).split("."):  # "meta" is ops.info.meta, as the worker resolves it
            method = getattr(method, name)
        return await asyncio.to_thread(method, **args)

    return request


def kill_worker_of(home: Path) -> None:
    """Last resort at teardown: a worker a test's GUI started detached must not outlive the test."""
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((home / "runtime" / "worker.json").read_text())
        os.kill(int(info["pid"]), signal.SIGKILL)


@pytest.fixture
def gui_env(jobdeck_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Workers the GUI starts use the in-memory keyring and fail fast on a closed SMTP port."""
    from engine.config import save_settings

    monkeypatch.setenv("JOBDECK_KEYRING", "memory")
    save_settings({"smtp_host": "127.0.0.1", "smtp_port": 9, "smtp_timeout_s": 5.0})
    return jobdeck_home


@pytest.fixture
def make_window(qtbot: Any, aloop: asyncio.AbstractEventLoop, gui_env: Path) -> Iterator[Callable[..., Any]]:
    """A MainWindow on the test's JOBDECK_HOME; shut down (worker stopped) afterwards."""
    from desktop.views.main_window import MainWindow
    from engine.config import Paths
    from engine.credentials import MemoryStore

    windows: list[Any] = []

    def _make(begin: bool = True, **kwargs: Any) -> Any:
        window = MainWindow(Paths(gui_env), store=kwargs.pop("store", MemoryStore()), **kwargs)
        window.confirm = lambda _title, _text: True
        windows.append(window)
        window.show()
        if begin:
            window.begin()
            qtbot.waitUntil(lambda: window.live.loaded_once and window.badge.state == "connected", timeout=30_000)
        return window

    yield _make
    for window in windows:
        with contextlib.suppress(Exception):
            run(qtbot, window.shutdown(stop_worker=window.supervisor.owned), timeout_ms=40_000)
        window.deleteLater()
    kill_worker_of(gui_env)
    qtbot.wait(10)


def wait_status(qtbot: Any, window: Any, job_id: int, status: str, timeout_ms: int = 20_000) -> dict[str, Any]:
    qtbot.waitUntil(lambda: (window.model.job(job_id) or {}).get("status") == status, timeout=timeout_ms)
    return window.model.job(job_id)


def email(recipient: str = "ops@example.com", subject: str = "Report") -> dict[str, Any]:
    return {"recipient": recipient, "subject": subject, "body": "Numbers attached."}
