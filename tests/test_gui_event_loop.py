"""The GUI's asyncio loop leaves no Qt timer behind when it closes (see desktop/event_loop.py)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A closed loop that still had a callback scheduled, freed by a garbage collection on another thread, then Qt
# events processed past the callback's time: what the GUI tests did when one test's loop was collected during
# the next. In a process of its own, because the failure is a segmentation fault.
SCENARIO = r"""
import asyncio, gc, sys, threading, time
from PySide6.QtWidgets import QApplication
import qasync
from desktop.event_loop import GuiEventLoop

app = QApplication([])
Loop = GuiEventLoop if sys.argv[1] == "gui" else qasync.QEventLoop
gc.disable()
for _ in range(5):
    loop = Loop(app, already_running=True)
    loop.call_later(0.02, print, "a closed loop ran a callback")
    asyncio.events._set_running_loop(None)  # as the GUI tests' fixture does before closing
    loop._QEventLoop__is_running = False
    loop.close()
    loop.cycle = loop  # only the cyclic collector frees it
    del loop
    collector = threading.Thread(target=gc.collect)
    collector.start()
    collector.join()
    end = time.monotonic() + 0.05
    while time.monotonic() < end:
        app.processEvents()
print("done")
"""


def _no_core_dump() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _scenario(loop: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", SCENARIO, loop],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_no_core_dump,  # the crash below is expected; it must not leave a core file
    )


def test_a_closed_loop_freed_on_another_thread_leaves_no_timer_to_fire(tmp_path: Path) -> None:
    result = _scenario("gui", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["done"]
    assert "Timers cannot be stopped" not in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the crash's signal and message as seen on Linux")
def test_the_scenario_does_crash_qasyncs_own_loop(tmp_path: Path) -> None:
    """Keeps the test above honest: if qasync stopped leaving timers behind, GuiEventLoop could go."""
    result = _scenario("qasync", tmp_path)
    assert result.returncode == -11 and "Timers cannot be stopped from another thread" in result.stderr
