"""The status-bar badge that shows the worker's state and offers start, stop, restart, pause and resume."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from desktop.widgets.theme import icon

STATES = {
    "connected": ("worker-connected", "Worker connected"),
    "reconnecting": ("worker-reconnecting", "Worker reconnecting…"),
    "starting": ("worker-reconnecting", "Worker starting…"),
    "paused": ("worker-paused", "Worker paused"),
    "stopped": ("worker-stopped", "Worker stopped"),
}


class WorkerBadge(QToolButton):
    """Shows one of connected / reconnecting / starting / paused / stopped; its menu drives the supervisor."""

    start_requested = Signal()
    stop_requested = Signal()
    restart_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workerBadge")
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setAutoRaise(True)
        menu = QMenu(self)
        self.start_action = QAction("Start worker", self)
        self.stop_action = QAction("Stop worker", self)
        self.restart_action = QAction("Restart worker", self)
        self.pause_action = QAction("Pause worker", self)
        self.resume_action = QAction("Resume worker", self)
        self.start_action.triggered.connect(self.start_requested)
        self.stop_action.triggered.connect(self.stop_requested)
        self.restart_action.triggered.connect(self.restart_requested)
        self.pause_action.triggered.connect(self.pause_requested)
        self.resume_action.triggered.connect(self.resume_requested)
        for action in (self.start_action, self.stop_action, self.restart_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.pause_action)
        menu.addAction(self.resume_action)
        self.setMenu(menu)
        self.state = ""
        self.detail = ""
        self.set_state("stopped")

    def set_state(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        icon_name, text = STATES.get(state, STATES["stopped"])
        self.setIcon(icon(icon_name))
        self.setText(text)
        self.setToolTip(f"{text}{' — ' + detail if detail else ''}")
        running = state in ("connected", "paused")
        self.start_action.setEnabled(state == "stopped")
        self.stop_action.setEnabled(state != "stopped")
        self.restart_action.setEnabled(state != "stopped")
        self.pause_action.setEnabled(state == "connected")
        self.resume_action.setEnabled(state == "paused")
        self.setProperty("running", running)
