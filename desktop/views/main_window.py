"""The main window: lays out the filter bar, jobs table, detail panel and status bar, and wires the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from desktop.models.jobs import Filter, JobTableModel
from desktop.models.meta import EngineMeta
from desktop.services.connection import WorkerConnection
from desktop.services.engine_info import EngineInfo
from desktop.services.live import LiveJobs
from desktop.services.supervisor import WorkerSupervisor
from desktop.views.detail_panel import DetailPanel
from desktop.views.drop_sheet import DropSheet
from desktop.views.filter_bar import FilterBar
from desktop.views.job_actions import JobActions, window_action
from desktop.views.job_dialog import JobDialog
from desktop.views.jobs_table import JobsTable
from desktop.views.schedule_editor import ScheduleEditor
from desktop.views.schedules_view import SchedulesView
from desktop.views.settings_dialog import SettingsDialog
from desktop.views.setup_bar import SetupBar
from desktop.views.stats_view import StatsView
from desktop.views.table_dialog import TableDialog
from desktop.views.transfers_view import TransfersView
from desktop.views.trash_view import TrashView
from desktop.views.tray import TrayController
from desktop.views.upload_picker import UploadPicker
from desktop.views.window_menus import ShortcutsDialog, about_text, build_menu_bar
from desktop.views.worker_control import WorkerControl
from desktop.widgets.drop_overlay import DropOverlay
from desktop.widgets.status_messages import StatusMessages
from desktop.widgets.theme import icon, theme_menu
from desktop.widgets.worker_badge import PausedBanner, WorkerBadge
from engine.config import Paths, Settings
from engine.credentials import CredentialStore, default_store
from engine.errors import JobdeckError

log = logging.getLogger(__name__)

Confirm = Callable[[str, str], bool]
UNDO_MS = 60_000  # how long "Undo" stays offered after a delete
WORKER_DOWN_NOTE = "Worker not running — continues when it restarts"


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
        self.confirm: Confirm = self._confirm_dialog  # tests replace this to answer confirmations
        self.messages: list[str] = []  # what the operator was told in the status bar, newest last
        self.tasks: set[asyncio.Future[Any]] = set()
        self._quitting = False
        self._detail_id: int | None = None
        self._reveal_id: int | None = None  # a job asked for by id, selected when its row is loaded
        self.connection = WorkerConnection(self.paths, self)
        self.supervisor = supervisor or WorkerSupervisor(self.paths, autostart=autostart, parent=self)
        self.model = JobTableModel(self)
        # What the engine says about itself (statuses, actions, job types) and the settings in effect: the window
        # keeps no copy of the engine's rules (see desktop.models.meta).
        self.meta = EngineMeta(self)
        self.model.set_meta(self.meta)
        self.info = EngineInfo(self.connection, self.meta, self)
        self.live = LiveJobs(self.connection, self.model, self)
        self.tray = TrayController(self, self.meta)
        self.setWindowTitle("Jobdeck")
        self.setWindowIcon(icon("jobdeck"))
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_ui()
        self._connect()
        self.resize(self.initial_size())

    def initial_size(self) -> QSize:
        """Most of a small screen, a sensible share (80 %) of a large one, never more than its available area (less the
        frame the window manager adds)."""
        line = self.fontMetrics().height()
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return QSize(line * 80, line * 42)
        area = screen.availableGeometry().size() - QSize(line, line * 2)  # room for the window manager's frame

        def side(available: int, comfortable: int, cap: int) -> int:
            return min(available, max(min(comfortable, available), min(int(available * 0.8), cap)))

        wanted = QSize(side(area.width(), line * 80, line * 110), side(area.height(), line * 42, line * 60))
        return wanted.expandedTo(self.minimumSizeHint()).boundedTo(area)

    # ------------------------------------------------------------------ building
    def _build_actions(self) -> None:
        def a(text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = "") -> Any:
            return window_action(self, text, slot, shortcut, tip)

        self.new_action = a("New job…", self.open_new_job, QKeySequence.StandardKey.New)
        self.upload_action = a("New upload…", self.open_upload_picker, "Ctrl+U", "Upload files or folders to S3")
        self.job_actions = JobActions(self)
        jobs = self.job_actions
        # The names tests, scripts and the toolbar use: the actions on the selection live in JobActions.
        self.retry_action, self.retry_all_action, self.cancel_action = jobs.retry, jobs.retry_all, jobs.cancel
        self.run_now_action, self.delete_action, self.clone_action = jobs.run_now, jobs.delete, jobs.clone
        self.copy_id_action, self.open_link_action = jobs.copy_id, jobs.open_link
        self.selection_actions = jobs.selection
        self.retry_selected, self.cancel_selected = jobs.retry_selected, jobs.cancel_selected
        self.run_now_selected, self.delete_selected = jobs.run_now_selected, jobs.delete_selected
        self.retry_all_failed, self.clone_selected = jobs.retry_all_failed, jobs.clone_selected
        self.copy_ids, self.open_result_link = jobs.copy_ids, jobs.open_result_link
        self.worker_control = WorkerControl(self)
        self.pause_action = self.worker_control.pause_action
        self.toggle_pause, self.quit_choice = self.worker_control.toggle_pause, self.worker_control.quit_choice
        self.stats_action = a("Statistics", self.open_stats, "Ctrl+I")
        self.trash_action = a("Trash…", self.open_trash, tip="Deleted jobs: restore them or delete them for good")
        self.schedules_action = a("Schedules…", self.open_schedules, tip="Recurring jobs: pause, resume, run now")
        self.transfers_action = a("Transfers", self.open_transfers, "Ctrl+T", "Active and recent uploads, per file")
        self.transfers: TransfersView | None = None
        # Ctrl+, everywhere: Qt's standard Preferences key is empty on Linux desktops.
        self.settings_action = a("Settings…", self.open_settings, "Ctrl+,")
        self.find_action = a("Find", self._focus_search, QKeySequence.StandardKey.Find)
        self.select_all_action = a("Select all jobs", self._select_all_jobs, QKeySequence.StandardKey.SelectAll)
        self.quit_action = a("Quit", self.request_quit, QKeySequence.StandardKey.Quit)
        self.shortcuts_action = a("Keyboard shortcuts", self.open_shortcuts, "Ctrl+/")
        self.about_action = a("About Jobdeck", self.open_about)
        self.theme_menu = theme_menu(self, self.paths.root / "theme")

    def _build_ui(self) -> None:
        toolbar = self.addToolBar("Jobs")
        toolbar.setObjectName("jobsToolbar")
        toolbar.setMovable(False)
        for action in (self.new_action, self.upload_action, None, self.retry_action, self.cancel_action,
                       self.run_now_action, self.delete_action, self.clone_action, None, self.retry_all_action,
                       None, self.pause_action, self.stats_action, self.schedules_action, self.trash_action,
                       self.settings_action):  # fmt: skip
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
        self.paused_banner = PausedBanner(central)
        layout.addWidget(self.paused_banner)
        self.setup_bar = SetupBar(self.meta, central)
        layout.addWidget(self.setup_bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.table = JobsTable(self.model, self.splitter)
        self.empty_label = self.table.empty_label
        self.detail = DetailPanel(self.splitter)
        self.detail.meta = self.meta
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        em = self.fontMetrics().horizontalAdvance("M")
        self.splitter.setSizes([em * 78, em * 20])
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.drop_overlay = DropOverlay(central)  # where a drag will drop, shown while it is over the window
        self.badge = WorkerBadge(self)
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setFlat(True)
        self.undo_button.hide()
        self.undo_button.clicked.connect(self._on_undo_button_clicked)
        self._undo_batch: str | None = None
        self._undo_timer = QTimer(self)
        self._undo_timer.setSingleShot(True)
        self._undo_timer.setInterval(UNDO_MS)
        self._undo_timer.timeout.connect(self.undo_button.hide)
        self.select_all_link = QLabel(self)
        self.select_all_link.setTextFormat(Qt.TextFormat.RichText)
        self.select_all_link.hide()
        self.select_all_link.linkActivated.connect(self._on_select_all_link_link_activated)
        self.count_label = QLabel(self)
        self.status_messages = StatusMessages(
            self.statusBar(), (self.undo_button, self.select_all_link, self.count_label, self.badge)
        )
        self.menus = build_menu_bar(self)
        # Tab goes pane to pane: the filter bar's controls, the table (one stop), the detail panel.
        self.setTabOrder(self.filter_bar.search, self.table)
        self.setTabOrder(self.table, self.detail.first_focus)
        self.job_actions.update_enabled()
        self._update_empty()

    def _connect(self) -> None:
        self.filter_bar.filter_changed.connect(self._on_filter_bar_filter_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.table.sort_changed.connect(self._on_table_sort_changed)
        self.job_actions.attach(self.table)
        # (connected after the table's own reset slot, which keeps the jobs still visible selected)
        self.model.modelReset.connect(self._on_selection_changed)
        for signal in (
            self.model.modelReset,
            self.model.rowsInserted,
            self.model.rowsRemoved,
            self.model.counted_changed,
        ):
            signal.connect(self._update_empty)
            signal.connect(self._update_count)
        self.live.counts_changed.connect(self._on_live_counts_changed)
        self.live.events_applied.connect(self._on_live_events_applied)
        self.live.failed.connect(self.tell)
        self.live.loading_changed.connect(self._on_live_loading_changed)
        self.worker_control.attach(self.badge)
        self.paused_banner.resume_requested.connect(self.worker_control.toggle_pause)
        self.connection.worker_status.connect(self._follow_worker_state)
        self.connection.state_changed.connect(self._follow_worker_state)
        self.supervisor.state_changed.connect(self._follow_worker_state)
        self.detail.link_copied.connect(self._on_detail_link_copied)
        self.detail.attach(self.connection, self.spawn, self.tell)
        self.meta.changed.connect(self._on_meta_changed)
        self.info.settings_changed.connect(self._on_info_settings_changed)
        self.setup_bar.open_settings.connect(self.open_settings)
        self.tray.show_requested.connect(self.show_and_raise)
        self.tray.upload_requested.connect(self.open_upload_picker)
        self.tray.quit_requested.connect(self.request_quit)
        self.tray.job_requested.connect(self.show_job)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(150)
        self._detail_timer.timeout.connect(self._on_detail_timer_timeout)
        self._reveal_timer = QTimer(self)
        self._reveal_timer.setSingleShot(True)
        self._reveal_timer.setInterval(10_000)
        self._reveal_timer.timeout.connect(self._on_reveal_timer_timeout)
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.dataChanged):
            signal.connect(self._reveal_pending)

    @property
    def worker(self) -> dict[str, Any]:
        """The worker's last status report."""
        return self.worker_control.worker

    @property
    def badge_state(self) -> str:
        return self.worker_control.badge_state

    # ------------------------------------------------------------------ start-up
    def begin(self) -> None:
        """Load settings, adopt or start the worker, take the first snapshot; all asynchronously."""
        self.spawn(self._begin())

    async def _begin(self) -> None:
        self.supervisor.begin()
        while not await self.connection.wait_until_available(30.0):
            log.info("still waiting for a worker")
        with contextlib.suppress(JobdeckError, OSError, TimeoutError):
            await self.info.load()  # before the first rows, so they are labelled and summarised as the engine says
        await self.live.start()

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
        """A message in the status bar for ten seconds, on one line (see ``StatusMessages``)."""
        self.messages.append(message)
        self.status_messages.show(message)

    # ------------------------------------------------------------------ selection and detail
    def selected_ids(self) -> list[int]:
        return self.table.selected_ids()

    def selected_jobs(self) -> list[dict[str, Any]]:
        return [job for job_id in self.selected_ids() if (job := self.model.job(job_id)) is not None]

    def select_job(self, job_id: int) -> bool:
        return self.table.select_job(job_id)

    def show_job(self, job_id: int) -> None:
        """From a notification, the Transfers window or a schedule's runs: show the window with the job selected.

        A job whose row is not loaded yet (the view is being read again) is selected when its row arrives, for a
        few seconds; one the filter hides clears the filter first."""
        self.show_and_raise()
        if self.select_job(job_id):
            self._reveal_id = None
            return
        self._reveal_id = job_id
        self._reveal_timer.start()
        self._detail_id = job_id
        self._detail_timer.start()
        if self.model.filter.narrowed:
            self.spawn(self._unhide(job_id, self.model.filter))

    async def _unhide(self, job_id: int, filt: Filter) -> None:
        """Clear the filter if the ledger says it hides the job (only the ledger can judge a search)."""
        found = await self.connection.request("list", ids=[job_id], limit=1, count=False, **filt.query_args())
        if not found["jobs"] and job_id == self._reveal_id and self.model.filter == filt:
            self.filter_bar.clear()

    def _reveal_pending(self, *_args: Any) -> None:
        if self._reveal_id is not None and self.select_job(self._reveal_id):
            self._reveal_id = None

    def _on_reveal_timer_timeout(self) -> None:
        self._reveal_id = None

    def _on_selection_changed(self, *_args: Any) -> None:
        """The actions, the detail panel and the "select all" link follow the rows selected now."""
        self.job_actions.update_enabled()
        count = self.table.selection_count()
        ids = self.selected_ids() if count == 1 else []
        self._detail_id = ids[0] if ids else None
        if self._detail_id is None:
            self.detail.show_job(None, f"{count:,} jobs selected." if count else "")
        else:
            self._detail_timer.start()
        rows = self.model.rowCount()
        self.select_all_link.setText(f"<a href='all'>Select all {rows:,} matching</a>")
        self.select_all_link.setVisible(1 < count < rows)

    def _on_select_all_link_link_activated(self, _link: str) -> None:
        self.table.selectAll()

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

    def _update_empty(self, *_args: Any) -> None:
        self.table.update_empty(self.live.loading)

    def _update_count(self, *_args: Any) -> None:
        """ "N of M matching": the rows the table holds, and how many jobs match the filter now; while a new view's
        first page is shown and its matches are still being counted, says so rather than a number that is not one."""
        if self.model.loaded and not self.model.counted:
            self.count_label.setText(f"{self.model.rowCount():,} shown · counting matches…")
            return
        stats = self.live.stats
        if stats is None:  # the status buttons' counts are on their way; the view's own count is here
            rows = self.model.rowCount()
            self.count_label.setText(f"{rows:,} of {rows:,} matching" if self.model.loaded else "")
            return
        statuses = self.model.filter.statuses
        matching = sum(stats["by_status"].get(s, 0) for s in statuses) if statuses else stats.get("total", 0)
        self.count_label.setText(f"{self.model.rowCount():,} of {matching:,} matching")

    # ------------------------------------------------------------------ live updates
    def _on_filter_bar_filter_changed(self, filt: Filter) -> None:
        current = self.model.filter
        self.spawn(self.live.load(replace(filt, sort=current.sort, descending=current.descending)))

    def _on_table_sort_changed(self, key: str, descending: bool) -> None:
        self.spawn(self.live.load(replace(self.model.filter, sort=key, descending=descending)))

    def _on_live_loading_changed(self, _loading: bool) -> None:
        self._update_empty()

    def _on_live_counts_changed(self, stats: dict[str, Any]) -> None:
        self.filter_bar.set_counts(stats)
        self._update_count()
        self._follow_worker_state()
        self.job_actions.update_enabled()  # with every matching job selected, the counts say what applies

    def _follow_worker_state(self, *_args: Any) -> None:
        """The paused banner (with the jobs waiting) and what running rows say follow the worker's state."""
        by_status = (self.live.stats or {}).get("by_status") or {}
        waiting = sum(int(by_status.get(s, 0)) for s in self.meta.waiting)
        state = self.badge_state
        self.paused_banner.set_paused(state == "paused", waiting)
        down = state in ("stopped", "reconnecting") and self.live.loaded_once
        self.model.set_worker_note(WORKER_DOWN_NOTE if down else "")

    def _on_meta_changed(self) -> None:
        self.types = list(self.meta.types.values())
        self.filter_bar.set_statuses([(s, self.meta.status_label(s)) for s in self.meta.status_names])
        self.filter_bar.set_types(self.types)
        self.job_actions.update_enabled()
        self._follow_worker_state()

    def _on_info_settings_changed(self, settings: Settings) -> None:
        self.settings = settings

    def _on_live_events_applied(self, events: list[dict[str, Any]]) -> None:
        self.job_actions.update_enabled()
        for event in events:
            job = event.get("job") or {}
            if event.get("event") == "failed" or (event.get("event") == "succeeded" and self.settings.notify_success):
                text = self.tray.notify(job)
                if not self.tray.available:
                    self.tell(text)
            if self._detail_id is not None and job.get("id") == self._detail_id:
                self._detail_timer.start()

    # ------------------------------------------------------------------ small slots
    def _confirm_dialog(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_detail_link_copied(self, url: str) -> None:
        self.tell(f"Copied {url}")

    def _select_all_jobs(self) -> None:
        self.table.setFocus()
        self.table.selectAll()

    def open_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self.menus.values(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def open_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Icon.NoIcon, "About Jobdeck", about_text(self), QMessageBox.StandardButton.Ok,
                          self)  # fmt: skip
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    def _focus_search(self) -> None:
        self.filter_bar.search.setFocus()
        self.filter_bar.search.selectAll()

    # ------------------------------------------------------------------ dialogs
    def new_job_dialog(self, prefill: dict[str, Any] | None = None) -> JobDialog:
        dialog = JobDialog(self.types, self.connection.request, default_max_retries=self.settings.default_max_retries,
                           parent=self, meta=self.meta)  # fmt: skip
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if prefill is not None:
            dialog.prefill(prefill)
        dialog.created.connect(self._on_dialog_created)
        dialog.repeated.connect(self._on_schedule_saved)
        return dialog

    def open_schedule_editor(
        self, *, prefill: dict[str, Any] | None = None, schedule: dict[str, Any] | None = None,
        copy_of: dict[str, Any] | None = None,
    ) -> ScheduleEditor:  # fmt: skip
        """New schedule (from a job's template with ``prefill``, or a copy of a schedule), or Edit of ``schedule``."""
        editor = ScheduleEditor(self.types, self.connection.request, schedule=schedule, parent=self,
                                default_max_retries=self.settings.default_max_retries)  # fmt: skip
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        if prefill is not None:
            editor.prefill(prefill)
        if copy_of is not None:
            editor.fill_from(copy_of, f"{copy_of['name']} (copy)")
        editor.created.connect(self._on_schedule_saved)
        editor.open()
        editor.start()
        return editor

    def _on_schedule_saved(self, schedule: dict[str, Any]) -> None:
        when = fmt.local_time(schedule["next_run_at"], seconds=False)
        self.tell(f"Saved schedule “{schedule['name']}”" + (f"; next run {when}." if when else "."))

    def open_new_job(self) -> JobDialog:
        dialog = self.new_job_dialog()
        dialog.open()
        return dialog

    def _on_dialog_created(self, job: dict[str, Any]) -> None:
        self.tell(f"Created job {job['id']}.")

    def drop_sheet(self, paths: list[str]) -> DropSheet:
        sheet = DropSheet(paths, self.settings, self.connection.request, self, data_folder=self.paths)
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.created.connect(self._on_sheet_created)
        self.info.settings_changed.connect(sheet.use_settings)  # its verdicts follow the worker's settings
        return sheet

    def _on_sheet_created(self, jobs: list[dict[str, Any]]) -> None:
        self.tell(f"Created {len(jobs):,} upload job{'s' if len(jobs) != 1 else ''}.")

    def open_upload_picker(self) -> None:
        self.show_and_raise()
        paths = UploadPicker.choose(self)  # files and folders
        if paths:
            self.drop_sheet(paths).open()

    def open_stats(self) -> StatsView:
        view = StatsView(self.connection.request, self, meta=self.meta, events=self.connection.job_events)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.show()
        view.start_refresh()
        return view

    def open_transfers(self) -> TransfersView:
        if self.transfers is None:
            self.transfers = TransfersView(self.connection, self)
            self.transfers.show_job_requested.connect(self.show_job)
        self.transfers.open_or_raise()
        return self.transfers

    def open_trash(self) -> TableDialog:
        return self._open_table(TrashView(self.connection.request, self, self.meta))

    def open_schedules(self) -> SchedulesView:
        view = SchedulesView(self.connection.request, self, open_editor=self._edit_schedule, meta=self.meta,
                             show_job=self.show_job)  # fmt: skip
        self.connection.schedule_events.connect(view.follow)
        self.connection.job_events.connect(view.follow)
        self._open_table(view)
        return view

    def _edit_schedule(self, schedule: dict[str, Any] | None, copy: bool = False) -> ScheduleEditor:
        return self.open_schedule_editor(copy_of=schedule) if copy else self.open_schedule_editor(schedule=schedule)

    def _open_table(self, view: TableDialog) -> TableDialog:
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        view.changed.connect(self.tell)
        view.show()
        view.start()
        return view

    def offer_undo(self, batch: str, count: int) -> None:
        """After a delete: "Undo" in the status bar for a minute puts the jobs back from the trash."""
        self._undo_batch = batch
        self.tell(f"Moved {count:,} job{'s' if count != 1 else ''} to the trash.")
        self.undo_button.show()
        self._undo_timer.start()

    def _on_undo_button_clicked(self) -> None:
        if self._undo_batch is not None:
            self.spawn(self.undo_delete())

    async def undo_delete(self) -> int:
        batch, self._undo_batch = self._undo_batch, None
        self.undo_button.hide()
        if batch is None:
            return 0
        result = await self.connection.request("restore", batch=batch)
        self.tell(f"Restored {result['restored']:,} job{'s' if result['restored'] != 1 else ''}.")
        return int(result["restored"])

    def open_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.connection.request, self.store, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self._on_settings_dialog_accepted)
        dialog.open()
        return dialog

    def _on_settings_dialog_accepted(self) -> None:
        self.tell("Settings saved. The worker reads them for each new job.")

    # ------------------------------------------------------------------ drag and drop
    @staticmethod
    def _local_paths(event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        paths = self._local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.drop_overlay.show_for(len(paths))
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.drop_overlay.hide()
        super().dragLeaveEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._local_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_overlay.hide()
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

    def request_quit(self) -> None:
        choice = self.quit_choice()
        if choice is not None:
            self.spawn(self.shutdown(stop_worker=choice == "stop"))

    async def shutdown(self, *, stop_worker: bool) -> None:
        """Stop watching, optionally stop the worker gracefully, close connections, then close the window."""
        self._quitting = True
        if stop_worker:
            await self.supervisor.stop(self.worker_control.shutdown_request)
        self.supervisor.shutdown_watch()
        await self.connection.close()
        self.tray.dispose()
        self.close()
        self.quit_finished.emit()
