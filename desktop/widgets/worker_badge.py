"""The status-bar badge that shows the worker's state and offers start, stop, restart, pause and resume; the banner
over the table while the worker is paused."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QPushButton, QToolButton, QWidget

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


class PausedBanner(QWidget):
    """ "Worker paused — N jobs waiting · Resume": a paused worker is easy to miss as a badge in the corner, and jobs
    then seem stuck."""

    resume_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pausedBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.icon = QLabel(self)
        self.icon.setAccessibleName("Paused")
        self.icon.setPixmap(icon("worker-paused").pixmap(self.fontMetrics().height(), self.fontMetrics().height()))
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setAccessibleName("Resume the worker")
        self.resume_button.clicked.connect(self.resume_requested)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.resume_button)
        self.hide()

    def set_paused(self, paused: bool, waiting: int) -> None:
        self.label.setText(f"Worker paused — {waiting:,} job{'s' if waiting != 1 else ''} waiting")
        self.setVisible(paused)
