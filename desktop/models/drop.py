"""What a drop would upload: the engine's expansion of the dropped paths (``engine.upload_paths.expand``: the same
rules as ``jobdeck upload``), one row per file with its key, size and why it will not be uploaded, if so."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.models import plain_text
from desktop.models.format import size as fmt_size
from engine.upload_paths import Entry, expand

Index = QModelIndex | QPersistentModelIndex
__all__ = ["DropCol", "DropItem", "DropModel", "expand"]


DropItem = Entry  # the engine's verdict on one dropped file, shown as a row


class DropCol(IntEnum):
    KEY = 0
    SIZE = 1
    STATE = 2


DROP_HEADERS = ("File (key)", "Size", "Will upload?")


class DropModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.items: list[DropItem] = []
        self.prefix = ""

    def set_items(self, items: list[DropItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def set_prefix(self, prefix: str) -> None:
        self.prefix = prefix
        if self.items:
            self.dataChanged.emit(self.index(0, DropCol.KEY), self.index(len(self.items) - 1, DropCol.KEY))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(DROP_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 3:
            return DROP_HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        item, col = self.items[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == DropCol.KEY:
                return self.prefix + item.key
            if col == DropCol.SIZE:
                return fmt_size(item.size) if item.size is not None else "?"
            return f"No — {item.problem}" if item.problem else "Yes"
        if role == Qt.ItemDataRole.ToolTipRole and col == DropCol.KEY:
            return plain_text.tooltip(item.path)
        if role == Qt.ItemDataRole.ForegroundRole and col == DropCol.STATE and item.problem:
            from desktop.widgets.theme import color  # the palette's error colour: readable in light and dark

            return color("error")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == DropCol.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @property
    def ok_items(self) -> list[DropItem]:
        return [i for i in self.items if not i.problem]

    @property
    def flagged(self) -> list[DropItem]:
        return [i for i in self.items if i.problem]
