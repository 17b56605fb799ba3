"""The main window: filter bar, live jobs table, detail panel, toolbar and the worker badge; wires the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.models.jobs import HEADERS, Col, Filter, JobTableModel, Role
from desktop.models.proxy import JobSortProxy
from desktop.services import settings_io
from desktop.services.connection import WorkerConnection
from desktop.services.live import LiveJobs
from desktop.services.supervisor import WorkerSupervisor
from desktop.views.detail_panel import DetailPanel
from desktop.views.drop_sheet import DropSheet
from desktop.views.filter_bar import FilterBar
from desktop.views.job_dialog import JobDialog
from desktop.views.settings_dialog import SettingsDialog
from desktop.views.stats_view import StatsView
from desktop.views.tray import TrayController
from desktop.widgets.delegates import ProgressDelegate, StatusBadgeDelegate, TextCellDelegate
from desktop.widgets.theme import icon
from desktop.widgets.worker_badge import WorkerBadge
from engine.config import Paths, Settings
from engine.credentials import CredentialStore, default_store
from engine.errors import JobdeckError

log = logging.getLogger(__name__)

EMPTY_HINT = "Drop files here to upload them, or create a job (Ctrl+N)."
EMPTY_FILTERED = "No jobs match these filters."

Confirm = Callable[[str, str], bool]


class MainWindow(QMainWindow):
    quit_finished = Signal()

    def __init__(
        self,
        paths: Paths | None = None,
        *,
        store: CredentialStore | None = None,
        autostart: bool = True,
        supervisor: WorkerSupervisor | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths or Paths()
        self.store = store or default_store()
        self.settings = Settings()
        self.types: list[dict[str, Any]] = []
        self.worker: dict[str, Any] = {}
        self.confirm: Confirm = self._confirm_dialog  # tests replace this to answer confirmations
        self.messages: list[str] = []  # what the operator was told in the status bar, newest last
        self.tasks: set[asyncio.Future[Any]] = set()
        self._quitting = False
        self._detail_id: int | None = None
        self.connection = WorkerConnection(self.paths, self)
        self.supervisor = supervisor or WorkerSupervisor(self.paths, autostart=autostart, parent=self)
        self.model = JobTableModel(self)
        self.proxy = JobSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.live = LiveJobs(self.connection, self.model, self)
        self.tray = TrayController(self)
        self.setWindowTitle("Jobdeck")
        self.setWindowIcon(icon("jobdeck"))
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._connect()
        line = self.fontMetrics().height()
        self.resize(line * 80, line * 42)

    # ------------------------------------------------------------------ building
    def _action(self, text: str, slot: Callable[[], None], shortcut: Any = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setToolTip(f"{tip or text} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                          if shortcut is not None else (tip or text))  # fmt: skip
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.new_action = a("New job…", self.open_new_job, QKeySequence.StandardKey.New)
        self.upload_action = a("New upload…", self.open_upload_picker, "Ctrl+U", "Upload files to S3")
        self.retry_action = a("Retry", self.retry_selected, "Ctrl+R", "Retry the selected jobs")
        self.retry_all_action = a("Retry all failed…", self.retry_all_failed, "Ctrl+Shift+R")
        self.cancel_action = a("Cancel", self.cancel_selected, "Ctrl+K", "Cancel the selected jobs")
        self.run_now_action = a("Run now", self.run_now_selected, "Ctrl+Return", "Run the selected jobs now")
        self.delete_action = a("Delete…", self.delete_selected, QKeySequence.StandardKey.Delete)
        self.clone_action = a("Clone and edit…", self.clone_selected, "Ctrl+D", "A new job from the selected one")
        self.copy_id_action = a("Copy id", self.copy_ids, "Ctrl+Shift+C", "Copy the selected job ids")
        self.open_link_action = a("Open result link", self.open_result_link, "Ctrl+O")
        self.pause_action = a("Pause worker", self.toggle_pause, "Ctrl+P", "Pause or resume the worker")
        self.stats_action = a("Statistics", self.open_stats, "Ctrl+I")
        self.settings_action = a("Settings…", self.open_settings, QKeySequence.StandardKey.Preferences)
        self.find_action = a("Find", self._focus_search, QKeySequence.StandardKey.Find)
        self.quit_action = a("Quit", self.request_quit, QKeySequence.StandardKey.Quit)
        self.selection_actions = (self.retry_action, self.cancel_action, self.run_now_action, self.delete_action,
                                  self.clone_action, self.copy_id_action, self.open_link_action)  # fmt: skip

    def _build_ui(self) -> None:
        toolbar = self.addToolBar("Jobs")
        toolbar.setObjectName("jobsToolbar")
        toolbar.setMovable(False)
        for action in (self.new_action, self.upload_action, None, self.retry_action, self.cancel_action,
                       self.run_now_action, self.delete_action, self.clone_action, None, self.retry_all_action,
                       None, self.pause_action, self.stats_action, self.settings_action):  # fmt: skip
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.filter_bar = FilterBar(central)
        layout.addWidget(self.filter_bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.table = QTableView(self.splitter)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(int(self.fontMetrics().height() * 1.7))
        self.table.setItemDelegate(TextCellDelegate(self.model, self.proxy, self.table))
        self.table.setItemDelegateForColumn(Col.STATUS, StatusBadgeDelegate(self.model, self.proxy, self.table))
        self.table.setItemDelegateForColumn(Col.OUTCOME, ProgressDelegate(self.model, self.proxy, self.table))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        em = self.fontMetrics().horizontalAdvance("M")
        samples = {Col.ID: "1000000", Col.TYPE: "Upload", Col.STATUS: "Succeeded  ", Col.PRIORITY: "9",
                   Col.ATTEMPTS: "10/10", Col.WHEN: "retry 2026-12-31 23:59", Col.CREATED: "2026-12-31 23:59",
                   Col.DURATION: "10 min 59 s"}  # fmt: skip
        bold = self.table.horizontalHeader().fontMetrics()
        for col, sample in samples.items():
            text = max(self.fontMetrics().horizontalAdvance(sample), bold.horizontalAdvance(HEADERS[col]) + em)
            self.table.setColumnWidth(col, text + em)
        self.table.setColumnWidth(Col.STATUS, max(StatusBadgeDelegate.width_for(self.table.font()),
                                                  bold.horizontalAdvance(HEADERS[Col.STATUS]) + 2 * em))  # fmt: skip
        self.table.setColumnWidth(Col.SUMMARY, em * 16)
        header.setSortIndicator(Col.ID, Qt.SortOrder.DescendingOrder)
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.sortIndicatorChanged.connect(self._on_header_sort_indicator_changed)
        self.empty_label = QLabel(EMPTY_HINT, self.table.viewport())
        self.empty_label.setObjectName("emptyHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.detail = DetailPanel(self.splitter)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([em * 78, em * 20])
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.badge = WorkerBadge(self)
        self.count_label = QLabel(self)
        self.statusBar().addPermanentWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.badge)
        self._update_selection_actions()
        self._update_empty()

    def _connect(self) -> None:
        self.filter_bar.filter_changed.connect(self._on_filter_bar_filter_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.table.customContextMenuRequested.connect(self._on_table_custom_context_menu_requested)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.rowsRemoved):
            signal.connect(self._update_empty)
        self.live.counts_changed.connect(self._on_live_counts_changed)
        self.live.events_applied.connect(self._on_live_events_applied)
        self.live.failed.connect(self.tell)
        self.live.loading_changed.connect(self._on_live_loading_changed)
        self.connection.state_changed.connect(self._on_connection_state_changed)
        self.connection.worker_status.connect(self._on_connection_worker_status)
        self.supervisor.state_changed.connect(self._on_supervisor_state_changed)
        self.supervisor.crashed.connect(self._on_supervisor_crashed)
        self.supervisor.started.connect(self._on_supervisor_started)
        self.badge.start_requested.connect(self._on_badge_start_requested)
        self.badge.stop_requested.connect(self._on_badge_stop_requested)
        self.badge.restart_requested.connect(self._on_badge_restart_requested)
        self.badge.pause_requested.connect(self._on_badge_pause_requested)
        self.badge.resume_requested.connect(self._on_badge_resume_requested)
        self.detail.link_copied.connect(self._on_detail_link_copied)
        self.tray.show_requested.connect(self.show_and_raise)
        self.tray.upload_requested.connect(self.open_upload_picker)
        self.tray.pause_toggled.connect(self._on_tray_pause_toggled)
        self.tray.quit_requested.connect(self.request_quit)
        self.tray.job_requested.connect(self.show_job)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(150)
        self._detail_timer.timeout.connect(self._on_detail_timer_timeout)

    # ------------------------------------------------------------------ start-up
    def begin(self) -> None:
        """Load settings, adopt or start the worker, take the first snapshot; all asynchronously."""
        self.spawn(self._begin())

    async def _begin(self) -> None:
        with contextlib.suppress(JobdeckError):
            self.settings = await settings_io.load(self.paths)
        self.supervisor.begin()
        await self.live.start()
        with contextlib.suppress(JobdeckError, OSError, TimeoutError):
            self.types = await self.connection.request("types")
            self.filter_bar.set_types(self.types)

    def spawn(self, coro: Any) -> asyncio.Future[Any]:
        """Run a coroutine on the qasync loop; errors are reported, not lost."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Future[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, JobdeckError | OSError | TimeoutError):
            self.tell(str(exc))
        elif exc is not None:
            log.error("background task failed", exc_info=exc)
            self.tell(f"Unexpected error: {type(exc).__name__}: {exc}")

    def tell(self, message: str) -> None:
        self.messages.append(message)
        self.statusBar().showMessage(message, 10_000)

    # ------------------------------------------------------------------ selection and detail
    def selected_ids(self) -> list[int]:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return sorted({int(index.data(Role.ID)) for index in rows})

    def selected_jobs(self) -> list[dict[str, Any]]:
        return [job for job_id in self.selected_ids() if (job := self.model.job(job_id)) is not None]

    def select_job(self, job_id: int) -> bool:
        row = self.model.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().setCurrentIndex(index, flags)
        self.table.scrollTo(index)
        return True

    def show_job(self, job_id: int) -> None:
        """From a notification: show the window with the job selected (clearing filters that hide it)."""
        self.show_and_raise()
        if not self.select_job(job_id):
            self._detail_id = job_id
            self._detail_timer.start()

    def _on_selection_changed(self, *_args: Any) -> None:
        self._update_selection_actions()
        ids = self.selected_ids()
        self._detail_id = ids[0] if len(ids) == 1 else None
        if self._detail_id is None:
            self.detail.show_job(None, f"{len(ids)} jobs selected." if ids else "")
        else:
            self._detail_timer.start()

    def _on_detail_timer_timeout(self) -> None:
        if self._detail_id is not None:
            self.spawn(self._load_detail(self._detail_id))

    async def _load_detail(self, job_id: int) -> None:
        try:
            job = await self.connection.request("get", job_id=job_id)
        except JobdeckError as exc:
            if job_id == self._detail_id:
                self.detail.show_job(None, str(exc))
            return
        if job_id == self._detail_id:
            self.detail.show_job(job)

    def _update_selection_actions(self) -> None:
        jobs = self.selected_jobs()
        statuses = {j.get("status") for j in jobs}
        self.retry_action.setEnabled(bool(statuses & {"failed", "canceled"}))
        self.cancel_action.setEnabled(bool(statuses & {"pending", "scheduled", "retrying"}))
        self.run_now_action.setEnabled(bool(statuses & {"scheduled", "retrying", "pending"}))
        self.delete_action.setEnabled(bool(statuses - {"running"}))
        self.clone_action.setEnabled(len(jobs) == 1)
        self.copy_id_action.setEnabled(bool(jobs))
        self.open_link_action.setEnabled(any(isinstance(j.get("result"), dict) and j["result"].get("file_url")
                                             for j in jobs))  # fmt: skip

    def _update_empty(self, *_args: Any) -> None:
        empty = self.model.rowCount() == 0 and self.live.loaded_once
        filt = self.model.filter
        self.empty_label.setText(EMPTY_FILTERED if (filt.statuses or filt.job_type or filt.search) else EMPTY_HINT)
        if empty != self.empty_label.isVisible():
            self.empty_label.setVisible(empty)
            self.empty_label.resize(self.table.viewport().size())

    def _on_header_sort_indicator_changed(self, column: int, order: Qt.SortOrder) -> None:
        # Newest first is the model's own order: no sorting work at all for the default view.
        if column == Col.ID and order == Qt.SortOrder.DescendingOrder:
            self.proxy.sort(-1)
        else:
            self.proxy.sort(column, order)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.empty_label.resize(self.table.viewport().size())

    # ------------------------------------------------------------------ live updates
    def _on_filter_bar_filter_changed(self, filt: Filter) -> None:
        self.spawn(self.live.load(filt))

    def _on_live_loading_changed(self, loading: bool) -> None:
        if not loading:
            self._update_empty()

    def _on_live_counts_changed(self, stats: dict[str, Any]) -> None:
        self.filter_bar.set_counts(stats)
        shown = self.model.rowCount()
        self.count_label.setText(f"{shown:,} shown · {stats.get('total', 0):,} jobs")

    def _on_live_events_applied(self, events: list[dict[str, Any]]) -> None:
        self._update_selection_actions()
        for event in events:
            job = event.get("job") or {}
            if event.get("event") == "failed" or (event.get("event") == "succeeded" and self.settings.notify_success):
                text = self.tray.notify(job)
                if not self.tray.available:
                    self.tell(text)
            if self._detail_id is not None and job.get("id") == self._detail_id:
                self._detail_timer.start()

    # ------------------------------------------------------------------ worker badge
    @property
    def badge_state(self) -> str:
        conn, sup = self.connection.state, self.supervisor.state
        if conn == "connected":
            return "paused" if self.worker.get("paused") else "connected"
        if sup == "starting":
            return "starting"
        if sup in ("stopped", "stopping") and self.supervisor._user_stopped:
            return "stopped"
        if conn == "stopped" and sup in ("stopped", "crashed") and not self.supervisor.autostart:
            return "stopped"
        return "reconnecting" if self.live.loaded_once or sup == "crashed" else "starting"

    def _refresh_badge(self) -> None:
        pid = self.worker.get("pid") or self.supervisor.pid
        state = self.badge_state
        self.badge.set_state(state, f"pid {pid}" if pid and state in ("connected", "paused") else "")
        paused = state == "paused"
        self.pause_action.setText("Resume worker" if paused else "Pause worker")
        self.tray.set_paused(paused)

    def _on_connection_state_changed(self, _state: str) -> None:
        self._refresh_badge()

    def _on_connection_worker_status(self, status: dict[str, Any]) -> None:
        self.worker = status
        self._refresh_badge()

    def _on_supervisor_state_changed(self, _state: str) -> None:
        self._refresh_badge()

    def _on_supervisor_started(self, pid: int) -> None:
        self.worker = {**self.worker, "pid": pid}
        self._refresh_badge()

    def _on_supervisor_crashed(self, message: str) -> None:
        self.tell(f"Worker problem: {message}")
        if self.tray.icon is not None:
            self.tray.icon.showMessage("Jobdeck worker", message)

    def _on_badge_start_requested(self) -> None:
        self.supervisor.start()

    def _on_badge_stop_requested(self) -> None:
        self.spawn(self.supervisor.stop(self._shutdown_request))

    def _on_badge_restart_requested(self) -> None:
        self.spawn(self._restart_worker())

    async def _restart_worker(self) -> None:
        await self.supervisor.stop(self._shutdown_request)
        self.supervisor.start()

    async def _shutdown_request(self) -> Any:
        return await self.connection.request("shutdown", timeout=5.0)

    def _on_badge_pause_requested(self) -> None:
        self.spawn(self.connection.request("pause"))

    def _on_badge_resume_requested(self) -> None:
        self.spawn(self.connection.request("resume"))

    def _on_tray_pause_toggled(self, pause: bool) -> None:
        self.spawn(self.connection.request("pause" if pause else "resume"))

    def toggle_pause(self) -> None:
        self.spawn(self.connection.request("resume" if self.worker.get("paused") else "pause"))

    # ------------------------------------------------------------------ actions on the selection
    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _apply_to(self, op: str, jobs: list[dict[str, Any]], allowed: set[str]) -> asyncio.Future[Any] | None:
        ids = [int(j["id"]) for j in jobs if j.get("status") in allowed]
        if not ids:
            return None
        return self.spawn(self._run_each(op, ids))

    async def _run_each(self, op: str, ids: list[int]) -> list[str]:
        errors: list[str] = []
        for job_id in ids:
            try:
                await self.connection.request(op, job_id=job_id)
            except JobdeckError as exc:
                errors.append(f"{job_id}: {exc}")
        verb = op.replace("_", " ")
        done = len(ids) - len(errors)
        self.tell(f"{verb}: {done:,} job{'s' if done != 1 else ''} done" + (f"; {'; '.join(errors[:3])}" if errors
                                                                              else ""))  # fmt: skip
        return errors

    def retry_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("retry", self.selected_jobs(), {"failed", "canceled"})

    def cancel_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("cancel", self.selected_jobs(), {"pending", "scheduled", "retrying"})

    def run_now_selected(self) -> asyncio.Future[Any] | None:
        return self._apply_to("run_now", self.selected_jobs(), {"pending", "scheduled", "retrying"})

    def delete_selected(self) -> asyncio.Future[Any] | None:
        jobs = [j for j in self.selected_jobs() if j.get("status") != "running"]
        if not jobs:
            return None
        what = f"job {jobs[0]['id']}" if len(jobs) == 1 else f"{len(jobs):,} jobs"
        if not self.confirm("Delete jobs", f"Delete {what}? This cannot be undone."):
            return None
        return self._apply_to("delete", jobs, {"pending", "scheduled", "retrying", "succeeded", "failed", "canceled"})

    def retry_all_failed(self) -> asyncio.Future[Any]:
        return self.spawn(self._retry_all_failed())

    async def _retry_all_failed(self) -> int:
        count = int(await self.connection.request("count_failed"))
        if count == 0:
            self.tell("There are no failed jobs to retry.")
            return 0
        # The question must not run inside this task (a nested Qt loop would re-enter asyncio): ask on the loop.
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        QTimer.singleShot(0, lambda: future.set_result(self.confirm("Retry failed jobs",
                                                                    f"Retry {count:,} failed jobs?")))  # fmt: skip
        if not await future:
            return 0
        result = await self.connection.request("retry_all_failed")
        self.tell(f"Retrying {result['count']:,} failed jobs.")
        return int(result["count"])

    def copy_ids(self) -> None:
        ids = self.selected_ids()
        if ids:
            QGuiApplication.clipboard().setText(", ".join(str(i) for i in ids))
            self.tell(f"Copied {len(ids)} id{'s' if len(ids) != 1 else ''}.")

    def open_result_link(self) -> None:
        for job in self.selected_jobs():
            result = job.get("result")
            if isinstance(result, dict) and result.get("file_url"):
                QDesktopServices.openUrl(QUrl(str(result["file_url"])))
                return

    def _on_detail_link_copied(self, url: str) -> None:
        self.tell(f"Copied {url}")

    def _focus_search(self) -> None:
        self.filter_bar.search.setFocus()
        self.filter_bar.search.selectAll()

    def _on_table_double_clicked(self, _index: QModelIndex) -> None:
        self.open_result_link()

    def _on_table_custom_context_menu_requested(self, pos: QPoint) -> None:
        menu = QMenu(self)
        for action in (self.retry_action, self.cancel_action, self.run_now_action, self.clone_action, None,
                       self.copy_id_action, self.open_link_action, None, self.delete_action, None, self.new_action,
                       self.retry_all_action):  # fmt: skip
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    # ------------------------------------------------------------------ dialogs
    def new_job_dialog(self, prefill: dict[str, Any] | None = None) -> JobDialog:
        dialog = JobDialog(self.types, self.connection.request, default_max_retries=self.settings.default_max_retries,
                           parent=self)  # fmt: skip
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if prefill is not None:
            dialog.prefill(prefill)
        dialog.created.connect(self._on_dialog_created)
        return dialog

    def open_new_job(self) -> JobDialog:
        dialog = self.new_job_dialog()
        dialog.open()
        return dialog

    def clone_selected(self) -> JobDialog | None:
        jobs = self.selected_jobs()
        if len(jobs) != 1:
            return None
        dialog = self.new_job_dialog(jobs[0])
        dialog.open()
        return dialog

    def _on_dialog_created(self, job: dict[str, Any]) -> None:
        self.tell(f"Created job {job['id']}.")

    def drop_sheet(self, paths: list[str]) -> DropSheet:
        sheet = DropSheet(paths, self.settings, self.connection.request, self)
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.created.connect(self._on_sheet_created)
        return sheet

    def _on_sheet_created(self, jobs: list[dict[str, Any]]) -> None:
        self.tell(f"Created {len(jobs):,} upload job{'s' if len(jobs) != 1 else ''}.")

    def open_upload_picker(self) -> None:
        self.show_and_raise()
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose files to upload")
        if paths:
            self.drop_sheet(paths).open()

    def open_stats(self) -> StatsView:
        view = StatsView(self.connection.request, self)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.show()
        view.start_refresh()
        return view

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.paths, self.store, self, request=self.connection.request)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.spawn(self._reload_settings()))
        dialog.open()
        return dialog

    async def _reload_settings(self) -> None:
        self.settings = await settings_io.load(self.paths)
        self.tell("Settings saved. The worker reads them for each new job.")

    # ------------------------------------------------------------------ drag and drop
    @staticmethod
    def _local_paths(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._local_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.last_sheet = self.drop_sheet(paths)
        self.last_sheet.open()

    # ------------------------------------------------------------------ showing, closing, quitting
    def show_and_raise(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._quitting and self.settings.close_to_tray and self.tray.available:
            event.ignore()
            self.hide()
            return
        if self._quitting:
            event.accept()
            return
        event.ignore()
        self.request_quit()

    def quit_choice(self) -> str | None:
        """keep | stop | None (cancelled). Asks once when the setting is "ask" and remembers if told to."""
        if self.settings.on_quit != "ask" or self.connection.state != "connected":
            return self.settings.on_quit if self.settings.on_quit != "ask" else "keep"
        box = QMessageBox(self)
        box.setWindowTitle("Quit Jobdeck")
        box.setText("Keep the worker running in the background after Jobdeck closes?")
        box.setInformativeText("A running worker keeps sending emails and uploading files, including scheduled jobs.")
        keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop worker", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        from PySide6.QtWidgets import QCheckBox

        remember = QCheckBox("Remember my choice", box)
        box.setCheckBox(remember)
        box.exec()
        clicked = box.clickedButton()
        choice = "keep" if clicked is keep else "stop" if clicked is stop else None
        if choice and remember.isChecked():
            self.spawn(settings_io.save(self.paths, {"on_quit": choice}))
        return choice

    def request_quit(self) -> None:
        choice = self.quit_choice()
        if choice is not None:
            self.spawn(self.shutdown(stop_worker=choice == "stop"))

    async def shutdown(self, *, stop_worker: bool) -> None:
        """Stop watching, optionally stop the worker gracefully, close connections, then close the window."""
        self._quitting = True
        if stop_worker:
            await self.supervisor.stop(self._shutdown_request)
        self.supervisor.shutdown_watch()
        await self.connection.close()
        self.tray.dispose()
        self.close()
        self.quit_finished.emit()
