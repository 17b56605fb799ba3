"""View → Transfers: a window listing the active and recent uploads, one row a file with its own progress bar, rate
and time left (like Cyberduck's transfer window), fed by the same worker events as the jobs table."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from desktop.models.transfers import ACTIVE, FINISHED, UPLOAD, TCol, TransfersModel, TRole
from desktop.widgets.delegates import bar_rect, paint_progress_bar
from engine.errors import JobdeckError

Request = Callable[..., Awaitable[Any]]
FLUSH_MS = 250  # progress reaches the rows at most four times a second, however many uploads run
TICK_MS = 1000


class ProgressCellDelegate(QStyledItemDelegate):
    """A bar with the progress text for a running (or finished) upload; plain text otherwise."""

    def paint(self, painter: Any, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        share = index.data(TRole.SHARE)
        variants = index.data(TRole.VARIANTS) or [""]
        job = index.data(TRole.JOB) or {}
        if share is None and job.get("status") != "running":
            super().paint(painter, option, index)
            return
        self.initStyleOption(option, index)
        style = option.widget.style() if option.widget is not None else QApplication.style()
        option.text = ""
        style.drawControl(style.ControlElement.CE_ItemViewItem, option, painter, option.widget)  # background
        metrics = option.fontMetrics
        status = str(job.get("status", "running"))
        paint_progress_bar(painter, bar_rect(option.rect, metrics), option.palette, metrics, share, variants, status)


class TransfersView(QDialog):
    """Not modal, kept when closed (it goes on following the worker, so reopening it is instant)."""

    show_job_requested = Signal(int)

    def __init__(self, connection: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Transfers")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.connection = connection
        self.request: Request = connection.request
        self.model = TransfersModel(self)
        self.model.meta = getattr(parent, "meta", self.model.meta)
        self.loaded = False
        self._loading: asyncio.Future[Any] | None = None
        self._held: list[dict[str, Any]] = []  # job events that came while the snapshot was read
        self._progress: dict[int, dict[str, Any]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        layout = QVBoxLayout(self)
        self.headline = QLabel("Loading…", self)
        self.headline.setObjectName("sectionTitle")
        self.headline.setWordWrap(True)
        self.headline.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.headline)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setAccessibleName("Uploads")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setTabKeyNavigation(False)  # one Tab stop for the list
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(int(self.fontMetrics().height() * 1.8))
        self.table.setItemDelegateForColumn(TCol.PROGRESS, ProgressCellDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        em = self.fontMetrics().horizontalAdvance("M")
        header.setSectionResizeMode(TCol.FILE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(TCol.SIZE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(TCol.PROGRESS, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(TCol.STATUS, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(TCol.FILE, em * 14)
        self.table.setColumnWidth(TCol.SIZE, em * 6)
        self.table.setColumnWidth(TCol.STATUS, em * 12)
        # Enter, or a double click (a single one where the platform says so), shows the upload among the jobs
        self.table.activated.connect(self._on_table_activated)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        layout.addWidget(self.table, 1)
        self.empty_label = QLabel("No uploads yet. Drop files on the window, or File → New upload…", self)
        self.empty_label.setWordWrap(True)
        layout.addWidget(self.empty_label)
        self.empty_label.hide()  # until the first answer: "no uploads" while loading would be a lie
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.message)
        buttons = QHBoxLayout()
        self.show_button = QPushButton("&Show job", self)
        self.cancel_button = QPushButton("&Cancel", self)
        self.retry_button = QPushButton("&Retry now", self)
        self.open_button = QPushButton("&Open link", self)
        self.clear_button = QPushButton("C&lear finished", self)
        self.close_button = QPushButton("Close", self)
        self.show_button.setToolTip("Select the upload in the jobs table (Enter)")
        self.cancel_button.setToolTip(
            "Cancel the selected uploads: a waiting one at once, a running one at its next read"
        )
        self.retry_button.setToolTip("Run the selected uploads again now: failed or canceled ones, or ones waiting")
        self.clear_button.setToolTip("Take finished uploads off this list (they stay in the jobs table)")
        for button, slot in ((self.show_button, self._on_show_button_clicked),
                             (self.cancel_button, self._on_cancel_button_clicked),
                             (self.retry_button, self._on_retry_button_clicked),
                             (self.open_button, self._on_open_button_clicked),
                             (self.clear_button, self._on_clear_button_clicked)):  # fmt: skip
            button.setAutoDefault(False)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        line = self.fontMetrics().height()
        self.resize(line * 52, line * 24)
        connection.job_events.connect(self._on_connection_job_events)
        connection.progress.connect(self._on_connection_progress)
        connection.state_changed.connect(self._on_connection_state_changed)
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._on_flush_timer_timeout)
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_MS)
        self._tick_timer.timeout.connect(self._on_tick_timer_timeout)
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.rowsRemoved, self.model.dataChanged):
            signal.connect(self._update_headline)
        self._update_buttons()

    # ------------------------------------------------------------------ showing
    def open_or_raise(self) -> None:
        """Show (reading the uploads the first time), or bring back to the front; the list has the focus."""
        if not self.loaded and self._loading is None:
            self._loading = self._spawn(self.load())
        self.show()
        self.raise_()
        self.activateWindow()
        self.table.setFocus()
        self._tick_timer.start()

    def hideEvent(self, event: Any) -> None:
        self._tick_timer.stop()
        super().hideEvent(event)

    async def load(self) -> bool:
        """The active uploads and the latest finished ones, then the events that came meanwhile."""
        try:
            active = await self.request("list", job_type=UPLOAD, status=list(ACTIVE), limit=500, count=False)
            recent = await self.request("list", job_type=UPLOAD, status=list(FINISHED), limit=100, count=False)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not read the uploads: {exc}")
            self._loading = None
            return False
        self.model.reset(active["jobs"] + recent["jobs"], seq=min(int(active["seq"]), int(recent["seq"])))
        self.loaded, self._loading = True, None
        held, self._held = self._held, []
        self.model.apply_events(held)
        self._update_headline()
        if self.model.rowCount() and not self.table.selectionModel().hasSelection():
            self.table.selectRow(0)  # the buttons have something to act on from the first key press
        return True

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ events
    def _on_connection_job_events(self, events: list[dict[str, Any]]) -> None:
        uploads = [e for e in events if (e.get("job") or {}).get("job_type") == UPLOAD]
        if not uploads:
            return
        if self.loaded:
            self.model.apply_events(uploads)
            self._update_buttons()
        elif self._loading is not None:
            self._held.extend(uploads)

    def _on_connection_progress(self, event: dict[str, Any]) -> None:
        if self.loaded:
            self._progress[int(event["job_id"])] = event.get("progress") or {}
            if not self._flush_timer.isActive():
                self._flush_timer.start()

    def _on_connection_state_changed(self, state: str) -> None:
        self.model.set_worker_down(state != "connected")

    def _on_flush_timer_timeout(self) -> None:
        progress, self._progress = self._progress, {}
        self.model.apply_progress(progress)

    def _on_tick_timer_timeout(self) -> None:
        self.model.tick()

    def _update_headline(self, *_args: Any) -> None:
        if not self.loaded:
            return
        s = self.model.summary()
        parts = []
        if s["running"]:
            parts.append(f"{s['running']} uploading")
        if s["waiting"]:
            parts.append(f"{s['waiting']} waiting")
        if s["finished"]:
            parts.append(f"{s['finished']} finished" + (f" ({s['failed']} failed)" if s["failed"] else ""))
        text = " · ".join(parts) or "No uploads"
        if s["running"] and s["total"]:
            text += f" — {fmt.size(s['done'])} of {fmt.size(s['total'])}"
            if s["rate"]:
                left = fmt.duration_short((s["total"] - s["done"]) / s["rate"])
                text += f" at {fmt.size(s['rate'])}/s, about {left} left"
        self.headline.setText(text)
        self.empty_label.setVisible(self.model.rowCount() == 0)

    # ------------------------------------------------------------------ actions
    def selected_jobs(self) -> list[dict[str, Any]]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.job_at(r) for r in rows if self.model.job_at(r)]

    def _update_buttons(self, *_args: Any) -> None:
        statuses = {j.get("status") for j in self.selected_jobs()}
        allows = self.model.meta.allows  # the statuses each action applies to, as the engine says
        self.show_button.setEnabled(bool(statuses))
        self.cancel_button.setEnabled(bool(statuses & set(allows("cancel"))))
        self.retry_button.setEnabled(bool(statuses & {*allows("retry"), *allows("run_now")}))
        self.open_button.setEnabled(any(self.model.meta.link(j) for j in self.selected_jobs()))

    def _on_table_activated(self, _index: QModelIndex) -> None:
        self._on_show_button_clicked()

    def _on_show_button_clicked(self) -> None:
        jobs = self.selected_jobs()
        if jobs:
            self.show_job_requested.emit(int(jobs[0]["id"]))

    def _on_open_button_clicked(self) -> None:
        for job in self.selected_jobs():
            if link := self.model.meta.link(job):
                QDesktopServices.openUrl(QUrl(link))
                return

    def _on_clear_button_clicked(self) -> None:
        gone = self.model.clear_finished()
        self.message.setText(f"Took {gone} finished upload{'s' if gone != 1 else ''} off the list.")

    def _on_cancel_button_clicked(self) -> None:
        cancelable = self.model.meta.allows("cancel")
        ids = [int(j["id"]) for j in self.selected_jobs() if j.get("status") in cancelable]
        if ids:
            self._spawn(self.act({"cancel": ids}))

    def _on_retry_button_clicked(self) -> None:
        jobs = self.selected_jobs()
        retry = self.model.meta.allows("retry")
        run_now = [s for s in self.model.meta.allows("run_now") if s not in retry]
        plan = {"retry": [int(j["id"]) for j in jobs if j.get("status") in retry],
                "run_now": [int(j["id"]) for j in jobs if j.get("status") in run_now]}  # fmt: skip
        self._spawn(self.act({k: v for k, v in plan.items() if v}))

    async def act(self, plan: dict[str, list[int]]) -> int:
        """Each action on its uploads, one request each; the rows follow from the events it causes."""
        done = 0
        errors: list[str] = []  # and notes (a running upload asked to stop)
        for action, ids in plan.items():
            try:
                result = await self.request("bulk", action=action, ids=ids)
            except (JobdeckError, OSError, TimeoutError) as exc:
                errors.append(str(exc))
                continue
            done += int(result["done"])
            errors += [result["note"]] if result.get("note") else []
            errors += list(result.get("errors") or [])
        verb = "Canceled" if "cancel" in plan else "Started again"
        self.message.setText(f"{verb}: {done} upload{'s' if done != 1 else ''}" + (
            f"; {'; '.join(errors[:3])}" if errors else ""))  # fmt: skip
        return done
