"""How Jobdeck starts itself again as a child process: the bundled executable, or this checkout's main.py."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURIER = "_courier"  # the worker's child that sends emails (engine.worker.courier), not a command


def jobdeck_command(*args: str) -> list[str]:
    """``jobdeck ARGS`` as an argv: a bundle (PyInstaller) re-runs its own executable, which has no main.py."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, str(ROOT / "main.py"), *args]
