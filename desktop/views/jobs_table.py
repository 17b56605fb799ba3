"""The jobs table view: delegates, column widths, sorting, the selection by job id and the empty-state hint."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QWidget

from desktop.models.jobs import HEADERS, Col, JobTableModel, Role
from desktop.models.proxy import JobSortProxy
from desktop.widgets.delegates import ProgressDelegate, StatusBadgeDelegate, TextCellDelegate

EMPTY_HINT = "Drop files here to upload them, or create a job (Ctrl+N)."
EMPTY_FILTERED = "No jobs match these filters."


class JobsTable(QTableView):
    """Shows the sort proxy over the jobs model; knows jobs by id, the model knows them by row."""

    def __init__(self, model: JobTableModel, proxy: JobSortProxy, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = model
        self.proxy = proxy
        self.setModel(proxy)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setShowGrid(False)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(int(self.fontMetrics().height() * 1.7))
        self.setItemDelegate(TextCellDelegate(model, proxy, self))
        self.setItemDelegateForColumn(Col.STATUS, StatusBadgeDelegate(model, proxy, self))
        self.setItemDelegateForColumn(Col.OUTCOME, ProgressDelegate(model, proxy, self))
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self._size_columns()
        header.setSortIndicator(Col.ID, Qt.SortOrder.DescendingOrder)
        header.setSortIndicatorShown(True)
        header.setSectionsClickable(True)
        header.sortIndicatorChanged.connect(self._on_header_sort_indicator_changed)
        self.empty_label = QLabel(EMPTY_HINT, self.viewport())
        self.empty_label.setObjectName("emptyHint")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)

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

    def selected_ids(self) -> list[int]:
        rows = self.selectionModel().selectedRows() if self.selectionModel() else []
        return sorted({int(index.data(Role.ID)) for index in rows})

    def select_job(self, job_id: int) -> bool:
        row = self.jobs.row_of(job_id)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.jobs.index(row, 0))
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index)
        return True

    def update_empty(self, loaded_once: bool) -> None:
        """Show the hint over an empty table once the first snapshot is in; it says whether filters hide the jobs."""
        empty = self.jobs.rowCount() == 0 and loaded_once
        filt = self.jobs.filter
        self.empty_label.setText(EMPTY_FILTERED if (filt.statuses or filt.job_type or filt.search) else EMPTY_HINT)
        if empty != self.empty_label.isVisible():
            self.empty_label.setVisible(empty)
            self.empty_label.resize(self.viewport().size())

    def _on_header_sort_indicator_changed(self, column: int, order: Qt.SortOrder) -> None:
        # Newest first is the model's own order: no sorting work at all for the default view.
        if column == Col.ID and order == Qt.SortOrder.DescendingOrder:
            self.proxy.sort(-1)
        else:
            self.proxy.sort(column, order)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.empty_label.resize(self.viewport().size())
