"""Sorting of the loaded jobs by any column, through each cell's natural sort value."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel

from desktop.models.jobs import Role


class JobSortProxy(QSortFilterProxyModel):
    """Sorts by ``Role.SORT`` so ids, priorities and durations sort as numbers and times chronologically."""

    def __init__(self, parent: object = None) -> None:
        super().__init__(parent)
        self.setSortRole(Role.SORT)
        self.setDynamicSortFilter(True)

    def source_row(self, row: int) -> int:
        """The model row shown at this proxy row. Unsorted, the proxy is the identity (it never filters: the server
        and the model do), and this costs no call into Qt; painting uses it for every visible cell."""
        if self.sortColumn() < 0:
            return row
        return self.mapToSource(self.index(row, 0)).row()

    def lessThan(self, left: QModelIndex | QPersistentModelIndex, right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(Role.SORT), right.data(Role.SORT)
        try:
            return bool(a < b)
        except TypeError:
            return str(a) < str(b)
