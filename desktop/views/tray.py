"""The tray icon and its menu (Show, New upload…, Pause/Resume worker, Quit) and job notifications."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from desktop.models.meta import EngineMeta
from desktop.widgets.theme import icon

QUIET_MS = 5_000  # after a notification, the next ones wait this long and come as one: a storm is one message
SHOWN_JOBS = 3  # the jobs a combined notification names


def _jobs(n: int) -> str:
    return f"{n:,} job" if n == 1 else f"{n:,} jobs"


class TrayController(QObject):
    """The menu always exists (tests and platforms without a tray use its actions directly); the icon only where a
    system tray is available."""

    show_requested = Signal()
    upload_requested = Signal()
    pause_toggled = Signal(bool)  # True: pause
    quit_requested = Signal()
    job_requested = Signal(int)  # a notification was clicked

    def __init__(self, parent: QObject | None = None, meta: EngineMeta | None = None) -> None:
        super().__init__(parent)
        self.meta = meta or EngineMeta(self)  # a notification's summary, as the engine makes it
        self.menu = QMenu()
        self.show_action = QAction("Show Jobdeck", self)
        self.upload_action = QAction("New upload…", self)
        self.pause_action = QAction("Pause worker", self)
        self.quit_action = QAction("Quit", self)
        self.show_action.triggered.connect(self.show_requested)
        self.upload_action.triggered.connect(self.upload_requested)
        self.pause_action.triggered.connect(self._on_pause_action_triggered)
        self.quit_action.triggered.connect(self.quit_requested)
        for action in (self.show_action, self.upload_action, self.pause_action):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.paused = False
        self.last_job_id: int | None = None
        self.shown: list[tuple[str, str]] = []  # the notifications shown (title, text), for tests and history
        self._held: list[tuple[bool, str, str]] = []  # (failed, title, text) waiting for the quiet time to end
        self._quiet = QTimer(self)
        self._quiet.setSingleShot(True)
        self._quiet.setInterval(QUIET_MS)
        self._quiet.timeout.connect(self._release)
        self.icon: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(icon("jobdeck"), self)
            self.icon.setToolTip("Jobdeck")
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._on_icon_activated)
            self.icon.messageClicked.connect(self._on_icon_message_clicked)
            self.icon.show()

    @property
    def available(self) -> bool:
        return self.icon is not None

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_action.setText("Resume worker" if paused else "Pause worker")

    def _on_pause_action_triggered(self) -> None:
        self.pause_toggled.emit(not self.paused)

    def _on_icon_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.show_requested.emit()

    def _on_icon_message_clicked(self) -> None:
        if self.last_job_id is not None:
            self.job_requested.emit(self.last_job_id)

    def notify(self, job: dict[str, Any]) -> str:
        """A job failed for good (with its error) or succeeded; returns its one-job text.

        The first notification shows at once; those that follow within ``QUIET_MS`` are shown together when it
        ends ("12 jobs failed", naming the last few), so that an outage failing thousands of jobs is a handful of
        messages, not one per job. Clicking one shows the last job it names."""
        self.last_job_id = int(job["id"])
        failed = job.get("status") == "failed"
        title = f"Job {job['id']} {'failed' if failed else 'succeeded'}"
        if job.get("schedule_id") is not None:  # a run of a schedule: say which one
            title += f" (schedule {job['schedule_id']})"
        text = self.meta.summary(job)
        if failed and job.get("error"):
            text = f"{text}\n{job['error']}" if text else str(job["error"])
        self._held.append((failed, title, text))
        if not self._quiet.isActive():
            self._release()
        return f"{title}: {text}"

    def _release(self) -> None:
        held, self._held = self._held, []
        if not held:
            return
        if len(held) == 1:
            failed, title, text = held[0]
        else:
            failures = sum(1 for f, _, _ in held if f)
            failed = failures > 0
            counts = ((failures, "failed"), (len(held) - failures, "succeeded"))
            title = ", ".join(f"{_jobs(n)} {outcome}" for n, outcome in counts if n)
            names = [f"{t}: {x.splitlines()[0]}" if x else t for _, t, x in held[-SHOWN_JOBS:]]
            more = len(held) - len(names)
            text = "\n".join(names) + (f"\nand {more:,} more" if more else "")
        self.shown.append((title, text))
        if self.icon is not None:
            kind = QSystemTrayIcon.MessageIcon.Critical if failed else QSystemTrayIcon.MessageIcon.Information
            self.icon.showMessage(title, text[:300], kind, 10_000)
        self._quiet.start()

    def dispose(self) -> None:
        if self.icon is not None:
            self.icon.hide()
        self.menu.deleteLater()
