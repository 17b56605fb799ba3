"""A dialog that lists rows fetched over the control channel, with a row of action buttons: Trash, Schedules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

Request = Callable[..., Awaitable[Any]]


class TableDialog(QDialog):
    """A headline, a read-only table (first column: the id, right-aligned) and buttons; ``start`` loads it."""

    changed = Signal(str)  # what was done, for the status bar

    def __init__(
        self, request: Request, title: str, headers: Sequence[str], buttons: Sequence[str], width_em: int,
        parent: QWidget | None = None, stretch: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.setWindowTitle(title)
        self.request = request
        layout = QVBoxLayout(self)
        self.headline = QLabel("Loading…", self)
        layout.addWidget(self.headline)
        self.table = QTableWidget(0, len(headers), self)
        self.table.setHorizontalHeaderLabels(list(headers))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        # Spare width goes to the column with the longest text (``stretch``, else the last); the others fit theirs.
        self.stretch = len(headers) - 1 if stretch is None else stretch
        header = self.table.horizontalHeader()
        header.setStretchLastSection(self.stretch == len(headers) - 1)
        header.setSectionResizeMode(self.stretch, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.buttons = {label: QPushButton(label, self) for label in buttons}
        for button in self.buttons.values():
            row.addWidget(button)
        row.addStretch(1)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        row.addWidget(close)
        layout.addLayout(row)
        self.tasks: set[asyncio.Future[Any]] = set()
        em = self.fontMetrics().horizontalAdvance("M")
        self.resize(em * width_em, em * 30)

    def _spawn(self, coro: Any) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def start(self) -> asyncio.Future[Any]:
        return self._spawn(self.load())

    async def load(self) -> None:
        raise NotImplementedError

    def fill(self, rows: Sequence[Sequence[str]]) -> None:
        self.table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(text)  # a cell too narrow for its text elides it; the tooltip has it whole
                self.table.setItem(row, col, item)
        for col in range(self.table.columnCount()):
            if col != self.stretch:
                self.table.resizeColumnToContents(col)
