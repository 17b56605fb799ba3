"""The actions on selected jobs (retry, cancel, run now, delete, clone, copy id, open link, retry all failed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMenu, QTableView, QWidget

from engine.errors import JobdeckError

if TYPE_CHECKING:
    from desktop.views.job_dialog import JobDialog
    from desktop.views.main_window import MainWindow

RETRYABLE = {"failed", "canceled"}
WAITING = {"pending", "scheduled", "retrying"}
DELETABLE = WAITING | {"succeeded", "failed", "canceled"}


def window_action(window: QWidget, text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = "") -> QAction:
    """An action added to the window, its shortcut shown in the tooltip."""
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.setToolTip(f"{tip or text} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                      if shortcut is not None else (tip or text))  # fmt: skip
    action.triggered.connect(lambda _checked=False: slot())
    window.addAction(action)
    return action


class JobActions(QObject):
    """Owns the selection actions, keeps them enabled to match the selection, and runs them through the window."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        a = self._action
        self.retry = a("Retry", self.retry_selected, "Ctrl+R", "Retry the selected jobs")
        self.retry_all = a("Retry all failed…", self.retry_all_failed, "Ctrl+Shift+R")
        self.cancel = a("Cancel", self.cancel_selected, "Ctrl+K", "Cancel the selected jobs")
        self.run_now = a("Run now", self.run_now_selected, "Ctrl+Return", "Run the selected jobs now")
        self.delete = a("Delete…", self.delete_selected, QKeySequence.StandardKey.Delete)
        self.clone = a("Clone and edit…", self.clone_selected, "Ctrl+D", "A new job from the selected one")
        self.copy_id = a("Copy id", self.copy_ids, "Ctrl+Shift+C", "Copy the selected job ids")
        self.open_link = a("Open result link", self.open_result_link, "Ctrl+O")
        self.selection = (self.retry, self.cancel, self.run_now, self.delete, self.clone, self.copy_id, self.open_link)

    def _action(self, text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = "") -> QAction:
        return window_action(self.window, text, slot, shortcut, tip)

    def attach(self, table: QTableView) -> None:
        """Offer the actions in the table's context menu; a double click opens the result link."""
        self.table = table
        table.customContextMenuRequested.connect(self._on_table_custom_context_menu_requested)
        table.doubleClicked.connect(self._on_table_double_clicked)

    def update_enabled(self) -> None:
        jobs = self.window.selected_jobs()
        statuses = {j.get("status") for j in jobs}
        self.retry.setEnabled(bool(statuses & RETRYABLE))
        self.cancel.setEnabled(bool(statuses & WAITING))
        self.run_now.setEnabled(bool(statuses & WAITING))
        self.delete.setEnabled(bool(statuses - {"running"}))
        self.clone.setEnabled(len(jobs) == 1)
        self.copy_id.setEnabled(bool(jobs))
        self.open_link.setEnabled(any(isinstance(j.get("result"), dict) and j["result"].get("file_url")
                                      for j in jobs))  # fmt: skip

    # ------------------------------------------------------------------ running them
    def _apply_to(self, op: str, jobs: list[dict[str, Any]], allowed: set[str]) -> asyncio.Future[Any] | None:
        ids = [int(j["id"]) for j in jobs if j.get("status") in allowed]
        if not ids:
            return None
        return self.window.spawn(self._run_each(op, ids))

    async def _run_each(self, op: str, ids: list[int]) -> list[str]:
        errors: list[str] = []
        for job_id in ids:
            try:
                await self.window.connection.request(op, job_id=job_id)
            except JobdeckError as exc:
                errors.append(f"{job_id}: {exc}")
        verb = op.replace("_", " ")
        done = len(ids) - len(errors)
        self.window.tell(f"{verb}: {done:,} job{'s' if done != 1 else ''} done" + (
            f"; {'; '.join(errors[:3])}" if errors else ""))  # fmt: skip
        return errors

    def retry_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("retry", self.window.selected_jobs(), RETRYABLE)

    def cancel_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("cancel", self.window.selected_jobs(), WAITING)

    def run_now_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("run_now", self.window.selected_jobs(), WAITING)

    def delete_selected(self) -> asyncio.Future[Any] | None:
        jobs = [j for j in self.window.selected_jobs() if j.get("status") != "running"]
        if not jobs:
            return None
        what = f"job {jobs[0]['id']}" if len(jobs) == 1 else f"{len(jobs):,} jobs"
        if not self.window.confirm("Delete jobs", f"Delete {what}? This cannot be undone."):
            return None
        return self._apply_to("delete", jobs, DELETABLE)

    def retry_all_failed(self) -> asyncio.Future[Any]:
        return self.window.spawn(self._retry_all_failed())

    async def _retry_all_failed(self) -> int:
        count = int(await self.window.connection.request("count_failed"))
        if count == 0:
            self.window.tell("There are no failed jobs to retry.")
            return 0
        # The question must not run inside this task (a nested Qt loop would re-enter asyncio): ask on the loop.
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        question = f"Retry {count:,} failed jobs?"
        QTimer.singleShot(0, lambda: future.set_result(self.window.confirm("Retry failed jobs", question)))
        if not await future:
            return 0
        result = await self.window.connection.request("retry_all_failed")
        self.window.tell(f"Retrying {result['count']:,} failed jobs.")
        return int(result["count"])

    def clone_selected(self) -> JobDialog | None:
        jobs = self.window.selected_jobs()
        if len(jobs) != 1:
            return None
        dialog = self.window.new_job_dialog(jobs[0])
        dialog.open()
        return dialog

    def copy_ids(self) -> None:
        ids = self.window.selected_ids()
        if ids:
            QGuiApplication.clipboard().setText(", ".join(str(i) for i in ids))
            self.window.tell(f"Copied {len(ids)} id{'s' if len(ids) != 1 else ''}.")

    def open_result_link(self) -> None:
        for job in self.window.selected_jobs():
            result = job.get("result")
            if isinstance(result, dict) and result.get("file_url"):
                QDesktopServices.openUrl(QUrl(str(result["file_url"])))
                return

    # ------------------------------------------------------------------ the table
    def _on_table_double_clicked(self, _index: QModelIndex) -> None:
        self.open_result_link()

    def _on_table_custom_context_menu_requested(self, pos: QPoint) -> None:
        menu = QMenu(self.window)
        for action in (self.retry, self.cancel, self.run_now, self.clone, None, self.copy_id, self.open_link, None,
                       self.delete, None, self.window.new_action, self.retry_all):  # fmt: skip
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))
