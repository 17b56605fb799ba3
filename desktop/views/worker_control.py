"""The worker as the window shows it: the badge, pause/resume, start/stop/restart, and whether it outlives a quit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QCheckBox, QMessageBox

from desktop.views.job_actions import window_action
from desktop.widgets.worker_badge import WorkerBadge

if TYPE_CHECKING:
    from desktop.views.main_window import MainWindow


class WorkerControl(QObject):
    """Follows the connection and the supervisor into the badge and the pause action; runs what the badge asks."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.worker: dict[str, Any] = {}  # the worker's last status report
        self._crashed = False  # a "Worker problem" message is showing until the worker serves again
        self.pause_action = window_action(window, "Pause worker", self.toggle_pause, "Ctrl+P",
                                          "Pause or resume the worker")  # fmt: skip

    def attach(self, badge: WorkerBadge) -> None:
        self.badge = badge
        w = self.window
        w.connection.state_changed.connect(self._on_connection_state_changed)
        w.connection.worker_status.connect(self._on_connection_worker_status)
        w.supervisor.state_changed.connect(self._on_supervisor_state_changed)
        w.supervisor.crashed.connect(self._on_supervisor_crashed)
        w.supervisor.started.connect(self._on_supervisor_started)
        badge.start_requested.connect(self._on_badge_start_requested)
        badge.stop_requested.connect(self._on_badge_stop_requested)
        badge.restart_requested.connect(self._on_badge_restart_requested)
        badge.pause_requested.connect(self._on_badge_pause_requested)
        badge.resume_requested.connect(self._on_badge_resume_requested)
        w.tray.pause_toggled.connect(self._on_tray_pause_toggled)

    # ------------------------------------------------------------------ the badge
    @property
    def badge_state(self) -> str:
        supervisor = self.window.supervisor
        conn, sup = self.window.connection.state, supervisor.state
        if conn == "connected":
            return "paused" if self.worker.get("paused") else "connected"
        if sup == "starting":
            return "starting"
        if sup in ("stopped", "stopping") and supervisor._user_stopped:
            return "stopped"
        if conn == "stopped" and sup in ("stopped", "crashed") and not supervisor.autostart:
            return "stopped"
        return "reconnecting" if self.window.live.loaded_once or sup == "crashed" else "starting"

    def refresh_badge(self) -> None:
        pid = self.worker.get("pid") or self.window.supervisor.pid
        state = self.badge_state
        self.badge.set_state(state, f"pid {pid}" if pid and state in ("connected", "paused") else "")
        # The status bar no longer says "restarting it", once the new worker's pid is known.
        if self._crashed and state in ("connected", "paused") and pid:
            self._crashed = False
            self.window.tell(f"The worker is running again (pid {pid}).")
        paused = state == "paused"
        self.pause_action.setText("Resume worker" if paused else "Pause worker")
        self.window.tray.set_paused(paused)

    def _on_connection_state_changed(self, state: str) -> None:
        if state != "connected":  # what the last worker said (its pid, paused) is not the next one's
            self.worker = {}
        self.refresh_badge()

    def _on_connection_worker_status(self, status: dict[str, Any]) -> None:
        self.worker = status
        self.refresh_badge()

    def _on_supervisor_state_changed(self, _state: str) -> None:
        self.refresh_badge()

    def _on_supervisor_started(self, pid: int) -> None:
        self.worker = {**self.worker, "pid": pid}
        self.refresh_badge()

    def _on_supervisor_crashed(self, message: str) -> None:
        self._crashed = True
        self.window.tell(f"Worker problem: {message}")
        if self.window.tray.icon is not None:
            self.window.tray.icon.showMessage("Jobdeck worker", message)

    # ------------------------------------------------------------------ what the badge and the tray ask for
    def _on_badge_start_requested(self) -> None:
        self.window.supervisor.start()

    def _on_badge_stop_requested(self) -> None:
        self.window.spawn(self.window.supervisor.stop(self.shutdown_request))

    def _on_badge_restart_requested(self) -> None:
        self.window.spawn(self._restart_worker())

    async def _restart_worker(self) -> None:
        await self.window.supervisor.stop(self.shutdown_request)
        self.window.supervisor.start()

    async def shutdown_request(self) -> Any:
        return await self.window.connection.request("shutdown", timeout=5.0)

    def _on_badge_pause_requested(self) -> None:
        self.window.spawn(self.window.connection.request("pause"))

    def _on_badge_resume_requested(self) -> None:
        self.window.spawn(self.window.connection.request("resume"))

    def _on_tray_pause_toggled(self, pause: bool) -> None:
        self.window.spawn(self.window.connection.request("pause" if pause else "resume"))

    def toggle_pause(self) -> None:
        self.window.spawn(self.window.connection.request("resume" if self.worker.get("paused") else "pause"))

    # ------------------------------------------------------------------ quitting
    def quit_choice(self) -> str | None:
        """keep | stop | None (cancelled). Asks once when the setting is "ask" and remembers if told to."""
        settings = self.window.settings
        if settings.on_quit != "ask" or self.window.connection.state != "connected":
            return settings.on_quit if settings.on_quit != "ask" else "keep"
        box = QMessageBox(self.window)
        box.setWindowTitle("Quit Jobdeck")
        box.setText("Keep the worker running in the background after Jobdeck closes?")
        box.setInformativeText("A running worker keeps sending emails and uploading files, including scheduled jobs.")
        keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop worker", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        remember = QCheckBox("Remember my choice", box)
        box.setCheckBox(remember)
        box.exec()
        clicked = box.clickedButton()
        choice = "keep" if clicked is keep else "stop" if clicked is stop else None
        if choice and remember.isChecked():
            self.window.spawn(self.window.info.save({"on_quit": choice}))  # sent before any shutdown request
        return choice
