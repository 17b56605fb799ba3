"""Whether a worker serves this data folder, and where: ``runtime/worker.json`` and whether its process lives.

Apart from the websocket client, so that a command can ask without importing websockets or asyncio.
"""

from __future__ import annotations

import json
import os
from typing import Any

from engine.paths import Paths


def read_worker_info(paths: Paths | None = None) -> dict[str, Any] | None:
    """``runtime/worker.json`` if its process is alive, else None."""
    path = (paths or Paths()).worker_info
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not pid_alive(int(info.get("pid", 0))):
        return None
    return info


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if handle:
            ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
            return True
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
