"""What a drop would upload: files found under the dropped paths, each with its key, size and any problem."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.models.format import size as fmt_size

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class DropItem:
    path: str
    key: str  # relative key (folder name + relative path), before the prefix
    size: int | None
    problem: str | None = None  # why it will not be uploaded; flagged, never silently skipped


def expand(paths: list[str], limit: int) -> list[DropItem]:
    """Folders recursively, keeping their relative paths in the key. Does file-system I/O: call it in a thread."""
    items: list[DropItem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            base = path.name

            def _unreadable(error: OSError, base: str = base, root: Path = path) -> None:
                rel = os.path.relpath(error.filename or str(root), root).replace(os.sep, "/")
                items.append(DropItem(str(error.filename), f"{base}/{rel}".rstrip("/."), None, "folder unreadable"))

            for folder, dirs, files in os.walk(path, onerror=_unreadable):
                dirs.sort()
                for name in sorted(files):
                    full = Path(folder) / name
                    rel = full.relative_to(path).as_posix()
                    items.append(_check(full, f"{base}/{rel}", limit))
        else:
            items.append(_check(path, path.name, limit))
    return items


def _check(path: Path, key: str, limit: int) -> DropItem:
    try:
        stat = path.stat()
    except OSError as exc:
        return DropItem(str(path), key, None, f"cannot read: {exc.strerror or exc}")
    if not path.is_file():
        return DropItem(str(path), key, None, "not a regular file")
    if not os.access(path, os.R_OK):
        return DropItem(str(path), key, stat.st_size, "unreadable (permission denied)")
    if stat.st_size > limit:
        return DropItem(str(path), key, stat.st_size, f"over the upload limit of {fmt_size(limit)}")
    return DropItem(str(path), key, stat.st_size)


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
            return item.path
        if role == Qt.ItemDataRole.ForegroundRole and col == DropCol.STATE and item.problem:
            from PySide6.QtGui import QColor

            return QColor("#d93025")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == DropCol.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @property
    def ok_items(self) -> list[DropItem]:
        return [i for i in self.items if not i.problem]

    @property
    def flagged(self) -> list[DropItem]:
        return [i for i in self.items if i.problem]
