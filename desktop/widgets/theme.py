"""Where the bundled resources live, the status colours, and the palette-aware style sheet."""

from __future__ import annotations

import contextlib
import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication

# Mid-tone colours that keep white text readable and stand out on both light and dark palettes.
STATUS_COLORS = {
    "pending": "#7a808a",
    "scheduled": "#7c5cff",
    "running": "#1e88e5",
    "retrying": "#c77700",
    "succeeded": "#2e9d57",
    "failed": "#d93025",
    "canceled": "#5f6670",
}
CHART_SUCCEEDED = "#2e9d57"
CHART_FAILED = "#d93025"


def resource_dir() -> Path:
    """``resources/`` next to the package, or inside a PyInstaller bundle (``sys._MEIPASS``)."""
    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "resources"
    return Path(__file__).resolve().parent.parent.parent / "resources"


@cache
def icon(name: str) -> QIcon:
    """``jobdeck`` or an icon in resources/icons (``status-failed``, ``worker-connected``…)."""
    folder = resource_dir()
    path = folder / f"{name}.svg" if name == "jobdeck" else folder / "icons" / f"{name}.svg"
    return QIcon(str(path))


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, "#7a808a"))


def apply_style(app: QApplication) -> None:
    """Fusion follows the platform palette (light or dark) everywhere, and our sheet only uses palette roles."""
    app.setStyle("Fusion")
    with contextlib.suppress(OSError):
        app.setStyleSheet((resource_dir() / "style.qss").read_text(encoding="utf-8"))
    app.setWindowIcon(icon("jobdeck"))
