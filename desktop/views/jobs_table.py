"""The jobs table view: delegates, column widths, sorting in the ledger, keys that reach every row, the selection
by job id, the "new jobs" banner and the empty-state hint."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QItemSelectionRange,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    Qt,
    Signal,
)
from PySide6.QtGui import QFocusEvent, QPainter, QPaintEvent, QPalette, QPen, QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QPushButton, QTableView, QWidget

from desktop.models.jobs import HEADERS, SORT_KEY_OF, Col, JobTableModel
from desktop.widgets.delegates import ProgressDelegate, StatusBadgeDelegate, TextCellDelegate
from desktop.widgets.theme import color

EMPTY_HINT = "Drop files here to upload them, or create a job (Ctrl+N)."
EMPTY_FILTERED = "No jobs match these filters."
_Move = QAbstractItemView.CursorAction


class JobsTable(QTableView):
    """Shows the jobs model; knows jobs by id, the model knows them by row. Sorting asks the ledger (``sort_changed``)
    instead of sorting loaded rows."""

    sort_changed = Signal(str, bool)  # ledger sort key, descending

    def __init__(self, model: JobTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = model
        self.setModel(model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setShowGrid(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        # Every row has one height: the view places a million rows without asking each for its size.
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(int(self.fontMetrics().height() * 1.7))
        self.setItemDelegate(TextCellDelegate(model, self))
        self.setItemDelegateForColumn(Col.STATUS, StatusBadgeDelegate(model, self))
        self.setItemDelegateForColumn(Col.OUTCOME, ProgressDelegate(model, self))
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)  # spare width goes to Summary and Result (``_share_spare_width``)
        header.setHighlightSections(False)  # a header's weight never changes with the selection
        self.setTabKeyNavigation(False)  # Tab leaves the table for the next pane instead of walking its cells
        # Progress (or the result) beside the status, where a narrow window still shows it; the model keeps its order.
        header.moveSection(header.visualIndex(Col.OUTCOME), header.visualIndex(Col.STATUS) + 1)
        self._size_columns()
        self._sort = (Col.ID, Qt.SortOrder.DescendingOrder)
        header.setSortIndicator(*self._sort)
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.sortIndicatorChanged.connect(self._on_header_sort_indicator_changed)
        self.empty_label = QLabel(EMPTY_HINT, self.viewport())
        self.empty_label.setObjectName("emptyHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.hide()
        self.new_jobs_button = QPushButton(self.viewport())
        self.new_jobs_button.setObjectName("newJobs")
        self.new_jobs_button.hide()
        self.new_jobs_button.clicked.connect(self._on_new_jobs_button_clicked)
        self._kept: list[int] = []
        model.new_jobs_changed.connect(self._on_jobs_new_jobs_changed)
        model.modelAboutToBeReset.connect(self._on_jobs_model_about_to_be_reset)
        model.modelReset.connect(self._on_jobs_model_reset)
        self.verticalScrollBar().valueChanged.connect(self._on_vertical_scroll_bar_value_changed)

    def _size_columns(self) -> None:
        em = self.fontMetrics().horizontalAdvance("M")
        samples = {Col.ID: "1000000", Col.TYPE: "Upload", Col.STATUS: "Succeeded  ", Col.PRIORITY: "9",
                   Col.ATTEMPTS: "10/10", Col.WHEN: "retry 2026-12-31 23:59", Col.CREATED: "2026-12-31 23:59",
                   Col.DURATION: "10 min 59 s"}  # fmt: skip
        bold = self.horizontalHeader().fontMetrics()
        for col, sample in samples.items():
            text = max(self.fontMetrics().horizontalAdvance(sample), bold.horizontalAdvance(HEADERS[col]) + em)
            self.setColumnWidth(col, text + em)
        self.setColumnWidth(Col.STATUS, max(StatusBadgeDelegate.width_for(self.font()),
                                            bold.horizontalAdvance(HEADERS[Col.STATUS]) + 2 * em))  # fmt: skip
        self.setColumnWidth(Col.SUMMARY, em * 16)
        self.setColumnWidth(Col.OUTCOME, em * 14)
        self._base = {Col.SUMMARY: em * 16, Col.OUTCOME: em * 14}
        # how narrow each may get: the progress bar keeps room for "42 % · 8 s left"
        self._floor = {Col.SUMMARY: em * 8, Col.OUTCOME: em * 12}

    def _share_spare_width(self) -> None:
        """Summary and Result share the width the other columns leave: they grow past their base width on a wide
        window and give up width (down to a floor) before a horizontal scroll bar appears on a narrow one."""
        others = sum(self.columnWidth(c) for c in range(len(HEADERS)) if c not in self._base)
        spare = self.viewport().width() - others - sum(self._base.values())
        for col, base in self._base.items():
            self.setColumnWidth(col, max(self._floor[col], base + spare // len(self._base)))

    # ------------------------------------------------------------------ selection
    def selection_count(self) -> int:
        """Selected rows, counted from the selection's ranges (a million selected rows are one range)."""
        model = self.selectionModel()
        return sum(r.height() for r in _ranges(model.selection())) if model is not None else 0

    def all_selected(self) -> bool:
        rows = self.jobs.rowCount()
        return rows > 0 and self.selection_count() == rows

    def selected_ids(self) -> list[int]:
        """The ids of the selected rows that are loaded (a selection over unloaded pages is acted on by filter)."""
        model = self.selectionModel()
        if model is None:
            return []
        rows = [row for r in _ranges(model.selection()) for row in self.jobs.loaded_rows(r.top(), r.bottom())]
        return sorted(set(self.jobs.loaded_ids(rows)))

    def select_job(self, job_id: int) -> bool:
        row = self.jobs.row_of(job_id)
        if row is None:
            return False
        index = self.jobs.index(row, 0)
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index)
        return True

    def _on_jobs_model_about_to_be_reset(self) -> None:
        self._kept = self.selected_ids()

    def _on_jobs_model_reset(self) -> None:
        """A new snapshot starts at the top; the jobs still selected in it stay selected (the others, hidden by
        the new filter, are no longer selected)."""
        self.scrollToTop()
        selection = QItemSelection()
        for job_id in self._kept:
            row = self.jobs.row_of(job_id)
            if row is not None:
                selection.select(self.jobs.index(row, 0), self.jobs.index(row, len(HEADERS) - 1))
        self._kept = []
        if not selection.isEmpty():
            self.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        else:
            self.selectionModel().clearSelection()

    # ------------------------------------------------------------------ the current row, visible
    def _row_rect(self, row: int) -> QRect:
        return QRect(0, self.rowViewportPosition(row), self.viewport().width(), self.rowHeight(row))

    def paintEvent(self, event: QPaintEvent) -> None:
        """The cells' delegates draw no focus hint (they paint from a cache), so the row the keys act on is outlined
        here while the table has the focus: in the focus colour, or dotted over a selected row's highlight."""
        super().paintEvent(event)
        current = self.currentIndex()
        if not self.hasFocus() or not current.isValid():
            return
        rect = self._row_rect(current.row()).adjusted(1, 1, -1, -1)
        if not rect.intersects(event.rect()):
            return
        painter = QPainter(self.viewport())
        if self.selectionModel().isRowSelected(current.row(), QModelIndex()):
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.HighlightedText), 1, Qt.PenStyle.DotLine))
            painter.drawRect(rect.adjusted(1, 1, -1, -1))
        else:
            painter.setPen(QPen(color("focus"), 2))
            painter.drawRect(rect)
        painter.end()

    def currentChanged(
        self, current: QModelIndex | QPersistentModelIndex, previous: QModelIndex | QPersistentModelIndex
    ) -> None:
        super().currentChanged(current, previous)
        for index in (previous, current):  # the whole row's outline, not only the cell Qt repaints
            self._update_row(index)

    def focusInEvent(self, event: QFocusEvent) -> None:
        super().focusInEvent(event)
        self._update_row(self.currentIndex())

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self._update_row(self.currentIndex())

    def _update_row(self, index: QModelIndex | QPersistentModelIndex) -> None:
        if index.isValid():
            self.viewport().update(self._row_rect(index.row()))

    # ------------------------------------------------------------------ keys and scrolling
    def moveCursor(self, action: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier) -> QModelIndex:
        """Home and End go to the first and last row (with or without Ctrl), as in a list; the pages in view are
        fetched as they paint."""
        if action in (_Move.MoveHome, _Move.MoveEnd) and self.jobs.rowCount():
            row = 0 if action == _Move.MoveHome else self.jobs.rowCount() - 1
            return self.jobs.index(row, max(0, self.currentIndex().column()))
        return super().moveCursor(action, modifiers)

    def _on_vertical_scroll_bar_value_changed(self, value: int) -> None:
        self.jobs.set_following(value == 0)

    def _on_jobs_new_jobs_changed(self, count: int) -> None:
        self.new_jobs_button.setText(f"{count:,} new job{'s' if count != 1 else ''} ↑")
        self.new_jobs_button.adjustSize()
        self.new_jobs_button.move((self.viewport().width() - self.new_jobs_button.width()) // 2, 4)
        self.new_jobs_button.setVisible(count > 0)

    def _on_new_jobs_button_clicked(self) -> None:
        self.scrollToTop()
        self.jobs.set_following(True)

    def update_empty(self, loading: bool) -> None:
        """The hint over an empty table, once a snapshot is in and none is loading; it says whether filters hide
        the jobs."""
        empty = self.jobs.rowCount() == 0 and self.jobs.loaded and not loading
        self.empty_label.setText(EMPTY_FILTERED if self.jobs.filter.narrowed else EMPTY_HINT)
        self.empty_label.resize(self.viewport().size())
        self.empty_label.setVisible(empty)

    def _on_header_sort_indicator_changed(self, column: int, order: Qt.SortOrder) -> None:
        key = SORT_KEY_OF.get(column)
        if key is None:  # a column with no order in the ledger: keep the one in force
            header = self.horizontalHeader()
            header.blockSignals(True)
            header.setSortIndicator(*self._sort)
            header.blockSignals(False)
            return
        self._sort = (Col(column), order)
        self.sort_changed.emit(key, order == Qt.SortOrder.DescendingOrder)

    def viewportEvent(self, event: QEvent) -> bool:
        """The viewport also narrows when the vertical scroll bar appears: the shared width follows it, so that no
        horizontal scroll bar appears for a few pixels."""
        if event.type() == QEvent.Type.Resize:
            self._share_spare_width()
        return super().viewportEvent(event)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.empty_label.resize(self.viewport().size())

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        super().scrollContentsBy(dx, dy)
        self.empty_label.move(0, 0)  # the hint stays over the viewport wherever the view scrolls
        self.new_jobs_button.move((self.viewport().width() - self.new_jobs_button.width()) // 2, 4)


def _ranges(selection: QItemSelection) -> Iterable[QItemSelectionRange]:
    """A selection's ranges (iterable at run time; PySide6's stubs do not say so)."""
    return cast(Iterable[QItemSelectionRange], selection)
