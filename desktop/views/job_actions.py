"""The actions on selected jobs (retry, cancel, run now, delete, clone, make recurring, copy id, open link, retry all
failed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMenu, QTableView, QWidget

if TYPE_CHECKING:
    from desktop.views.job_dialog import JobDialog
    from desktop.views.main_window import MainWindow
    from desktop.views.schedule_editor import ScheduleEditor


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
        self.make_recurring = a(
            "Make recurring…", self.make_recurring_selected, tip="Run the selected job's type and parameters on a rule"
        )
        self.copy_id = a("Copy id", self.copy_ids, "Ctrl+Shift+C", "Copy the selected job ids")
        self.open_link = a("Open result link", self.open_result_link, "Ctrl+O")
        self.selection = (self.retry, self.cancel, self.run_now, self.delete, self.clone, self.make_recurring,
                          self.copy_id, self.open_link)  # fmt: skip

    def _action(self, text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = "") -> QAction:
        return window_action(self.window, text, slot, shortcut, tip)

    def attach(self, table: QTableView) -> None:
        """Offer the actions in the table's context menu; a double click opens the result link."""
        self.table = table
        table.customContextMenuRequested.connect(self._on_table_custom_context_menu_requested)
        table.doubleClicked.connect(self._on_table_double_clicked)

    def update_enabled(self) -> None:
        """An action is enabled when a selected job is in a state it applies to; with every matching job selected
        (most of them not loaded) the count before the confirmation says how many it applies to."""
        everything = self.window.table.all_selected()
        jobs = [] if everything else self.window.selected_jobs()
        statuses = self._matching_statuses() if everything else {str(j.get("status")) for j in jobs}
        for action, name in ((self.retry, "retry"), (self.cancel, "cancel"), (self.run_now, "run_now"),
                             (self.delete, "delete")):  # fmt: skip
            applies = set(self.window.meta.allows(name))  # as the engine says (none until it has)
            action.setEnabled(bool(applies) and (statuses is None or bool(statuses & applies)))
        # One job selected, even when it is the only one in the view (then "every matching job" is that one).
        single = self.window.table.selection_count() == 1 and len(self.window.selected_jobs()) == 1
        self.clone.setEnabled(single)
        self.make_recurring.setEnabled(single)
        self.copy_id.setEnabled(bool(jobs))
        self.open_link.setEnabled(any(self.window.meta.link(j) for j in jobs))

    def _matching_statuses(self) -> set[str] | None:
        """With every matching job selected: the statuses some of them are in, from the status buttons' counts
        (which follow the type and the search); None while those are unknown."""
        stats = self.window.live.stats
        if stats is None:
            return None
        counts = stats.get("by_status") or {}
        shown = self.window.model.filter.statuses or tuple(counts)
        return {s for s in shown if int(counts.get(s) or 0) > 0}

    # ------------------------------------------------------------------ running them
    def _act(self, action: str) -> asyncio.Future[Any] | None:
        table = self.window.table
        if table.all_selected():
            model = self.window.model
            target: dict[str, Any] = {**model.filter.query_args(), "max_id": model.newest_id}
        else:
            ids = table.selected_ids()
            if not ids:
                return None
            target = {"ids": ids}
        return self.window.spawn(self._act_on(action, target))

    async def _act_on(self, action: str, target: dict[str, Any]) -> dict[str, Any] | None:
        """One request for the whole selection, evaluated in the ledger. The operator is asked first (with the
        exact count, and how many the action applies to) when it deletes, covers every matching job or
        includes jobs it does not apply to."""
        request = self.window.connection.request
        verb = action.replace("_", " ")
        ids = target.get("ids")
        local = [self.window.model.job(i) for i in ids] if ids is not None else []
        applies = set(self.window.meta.allows(action))
        if action == "delete" or ids is None or any(job is None or job.get("status") not in applies for job in local):
            counted = await request("bulk", action=action, dry_run=True, **target)
            matched, applicable = int(counted["matched"]), int(counted["applicable"])
            if not applicable:
                self.window.tell(f"{verb.capitalize()} applies to none of the {matched:,} selected jobs.")
                return None
            question = f"{verb.capitalize()} {applicable:,} of {matched:,} selected"
            if applicable < matched:
                labels = [self.window.meta.status_label(s).lower() for s in self.window.meta.allows(action)]
                question += f" — {matched - applicable:,} are not {_or_list(labels)}"
            if not await self.ask(f"{verb.capitalize()} jobs", question + "?"):
                return None
        result = await request("bulk", timeout=600.0, action=action, **target)
        done = int(result["done"])
        errors = result.get("errors") or []
        if action == "delete" and done and not errors:
            self.window.offer_undo(str(result["batch"]), done)
            return dict(result)
        notes = [result["note"]] if result.get("note") else []
        self.window.tell(f"{verb}: {done:,} job{'s' if done != 1 else ''} done" + "".join(
            f"; {note}" for note in [*notes, *errors[:3]]))  # fmt: skip
        return dict(result)

    async def ask(self, title: str, question: str) -> bool:
        """The operator's answer, asked from the loop (a nested Qt loop inside a task would re-enter asyncio)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        QTimer.singleShot(0, lambda: future.set_result(self.window.confirm(title, question)))
        return await future

    def retry_selected(self) -> asyncio.Future[Any] | None:
        return self._act("retry")

    def cancel_selected(self) -> asyncio.Future[Any] | None:
        return self._act("cancel")

    def run_now_selected(self) -> asyncio.Future[Any] | None:
        return self._act("run_now")

    def delete_selected(self) -> asyncio.Future[Any] | None:
        return self._act("delete")

    def retry_all_failed(self) -> asyncio.Future[Any]:
        return self.window.spawn(self._retry_all_failed())

    async def _retry_all_failed(self) -> int:
        count = int(await self.window.connection.request("count_failed"))
        if count == 0:
            self.window.tell("There are no failed jobs to retry.")
            return 0
        if not await self.ask("Retry failed jobs", f"Retry {count:,} failed jobs?"):
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

    def make_recurring_selected(self) -> ScheduleEditor | None:
        """The schedule editor, filled with the selected job's type, parameters, priority and retries."""
        jobs = self.window.selected_jobs()
        if len(jobs) != 1:
            return None
        return self.window.open_schedule_editor(prefill=jobs[0])

    def copy_ids(self) -> None:
        ids = self.window.selected_ids()
        if ids:
            QGuiApplication.clipboard().setText(", ".join(str(i) for i in ids))
            self.window.tell(f"Copied {len(ids)} id{'s' if len(ids) != 1 else ''}.")

    def open_result_link(self) -> None:
        for job in self.window.selected_jobs():
            link = self.window.meta.link(job)
            if link:
                QDesktopServices.openUrl(QUrl(link))
                return

    # ------------------------------------------------------------------ the table
    def _on_table_double_clicked(self, _index: QModelIndex) -> None:
        self.open_result_link()

    def _on_table_custom_context_menu_requested(self, pos: QPoint) -> None:
        menu = QMenu(self.window)
        for action in (self.retry, self.cancel, self.run_now, self.clone, self.make_recurring, None, self.copy_id,
                       self.open_link, None, self.delete, None, self.window.new_action, self.retry_all):  # fmt: skip
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))


def _or_list(statuses: list[str]) -> str:
    if not statuses:
        return "in a state it applies to"
    return statuses[0] if len(statuses) == 1 else ", ".join(statuses[:-1]) + " or " + statuses[-1]
