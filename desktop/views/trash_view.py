"""The trash view: deleted jobs (most recent first) that can still be restored, or purged for good."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.models import format as fmt
from engine.errors import JobdeckError

Request = Callable[..., Awaitable[Any]]
SHOWN = 1000  # the most recently deleted; the CLI (`jobdeck trash list --limit`) reaches the rest
HEADERS = ("ID", "Type", "Status", "Deleted", "Summary")


class TrashView(QDialog):
    changed = Signal(str)  # what was done, for the status bar

    def __init__(self, request: Request, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Trash")
        self.request = request
        layout = QVBoxLayout(self)
        self.headline = QLabel("Loading…", self)
        layout.addWidget(self.headline)
        self.table = QTableWidget(0, len(HEADERS), self)
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.restore_button = QPushButton("Restore", self)
        self.purge_button = QPushButton("Delete for good", self)
        self.empty_button = QPushButton("Empty trash", self)
        close = QPushButton("Close", self)
        for button in (self.restore_button, self.purge_button, self.empty_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.restore_button.clicked.connect(lambda: self._spawn(self._act("restore", ids=self.selected_ids())))
        self.purge_button.clicked.connect(lambda: self._spawn(self._act("purge_trash", ids=self.selected_ids())))
        self.empty_button.clicked.connect(lambda: self._spawn(self._act("purge_trash", everything=True)))
        close.clicked.connect(self.close)
        self.tasks: set[asyncio.Future[Any]] = set()
        em = self.fontMetrics().horizontalAdvance("M")
        self.resize(em * 60, em * 30)

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def start(self) -> asyncio.Future[Any]:
        return self._spawn(self.load())

    def selected_ids(self) -> list[int]:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return [int(self.table.item(row, 0).text()) for row in sorted(rows)]

    async def load(self) -> None:
        try:
            page = await self.request("trash", limit=SHOWN)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(f"Could not read the trash: {exc}")
            return
        jobs = page["jobs"]
        self.table.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            cells = (str(job["id"]), job["job_type"], fmt.STATUS_LABELS.get(job["status"], job["status"]),
                     fmt.local_time(job["deleted_at"], seconds=False), fmt.summary(job))  # fmt: skip
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        total = int(page["total"])
        more = f" (the {SHOWN:,} most recently deleted shown)" if total > len(jobs) else ""
        self.headline.setText(f"{total:,} deleted job{'s' if total != 1 else ''} in the trash{more}.")

    async def _act(self, op: str, **args: Any) -> None:
        if "ids" in args and not args["ids"]:
            return
        try:
            result = await self.request(op, **args)
        except (JobdeckError, OSError, TimeoutError) as exc:
            self.headline.setText(str(exc))
            return
        if op == "restore":
            self.changed.emit(f"Restored {result['restored']:,} job(s) from the trash.")
        else:
            self.changed.emit(f"Deleted {result['purged']:,} job(s) for good.")
        await self.load()
