"""What a drop would upload: the dropped paths expanded as ``jobdeck upload`` expands them
(``engine.upload_paths.expand``), one row per file with its key, size, a tick (only ticked rows are created) and the
worker's verdict: whether the file will be uploaded, and if not, why."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.models import plain_text
from desktop.models.format import size as fmt_size
from engine.upload_paths import Entry, expand

Index = QModelIndex | QPersistentModelIndex
__all__ = ["CHECKING", "DropCol", "DropItem", "DropModel", "expand"]


DropItem = Entry  # one dropped file as the expansion found it (``problem``: why it can never be uploaded)
CHECKING = "Checking…"


class DropCol(IntEnum):
    KEY = 0  # carries the row's tick
    SIZE = 1
    STATE = 2


DROP_HEADERS = ("File (key)", "Size", "Will upload?")


class DropModel(QAbstractTableModel):
    """Rows of dropped files. A row is uploaded when it is ticked, its expansion found no problem and the worker's
    dry run (``verdicts``, one per row; ``None`` until it answered) found none either."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.items: list[DropItem] = []
        self.ticked: list[bool] = []
        self.verdicts: list[str | None] | None = None  # the worker's reason per row ("" = will upload)
        self.prefix = ""

    def set_items(self, items: list[DropItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.ticked = [True] * len(self.items)
        self.verdicts = None
        self.endResetModel()

    def set_verdicts(self, verdicts: list[str | None] | None) -> None:
        """The worker's answer per row (``None`` for a row it was not asked about); ``None``: not asked yet."""
        self.verdicts = list(verdicts) if verdicts is not None else None
        self._changed()

    def set_prefix(self, prefix: str) -> None:
        self.prefix = prefix
        self._changed()

    def _changed(self) -> None:
        if self.items:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.items) - 1, len(DROP_HEADERS) - 1))

    def problem(self, row: int) -> str | None:
        """Why this row's file will not be uploaded: the expansion's reason, else the worker's."""
        item = self.items[row]
        if item.problem:
            return item.problem
        if self.verdicts is not None and row < len(self.verdicts):
            return self.verdicts[row] or None
        return None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(DROP_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 3:
            return DROP_HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and index.column() == DropCol.KEY and self.problem(index.row()) is None:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        row, col = index.row(), index.column()
        item, problem = self.items[row], self.problem(row)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == DropCol.KEY:
                return self.prefix + item.key
            if col == DropCol.SIZE:
                return fmt_size(item.size) if item.size is not None else "?"
            if problem:
                return f"No — {problem}"
            if self.verdicts is None:
                return CHECKING
            return "Yes" if self.ticked[row] else "No — unticked"
        if role == Qt.ItemDataRole.CheckStateRole and col == DropCol.KEY:
            on = self.ticked[row] and problem is None
            return Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ToolTipRole and col in (DropCol.KEY, DropCol.STATE):
            return plain_text.tooltip(problem if col == DropCol.STATE and problem else item.path)
        if role == Qt.ItemDataRole.ForegroundRole and col == DropCol.STATE and problem:
            from desktop.widgets.theme import color  # the palette's error colour: readable in light and dark

            return color("error")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == DropCol.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or not index.isValid() or index.column() != DropCol.KEY:
            return False
        if self.problem(index.row()) is not None:
            return False
        state = value.value if hasattr(value, "value") else value
        self.ticked[index.row()] = state == Qt.CheckState.Checked.value
        row = index.row()
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(DROP_HEADERS) - 1))
        return True

    @property
    def ok_items(self) -> list[DropItem]:
        """Files that will be uploaded if ticked."""
        return [item for row, item in enumerate(self.items) if self.problem(row) is None]

    @property
    def chosen_rows(self) -> list[int]:
        """Rows to create: ticked and without a problem."""
        return [row for row in range(len(self.items)) if self.ticked[row] and self.problem(row) is None]

    @property
    def flagged(self) -> list[DropItem]:
        return [item for row, item in enumerate(self.items) if self.problem(row) is not None]
