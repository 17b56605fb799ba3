"""The live jobs table: an adapter over job dicts, kept newest first, changed only by snapshots and events."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from desktop.models import format as fmt

Index = QModelIndex | QPersistentModelIndex


class Col(IntEnum):
    ID = 0
    TYPE = 1
    SUMMARY = 2
    STATUS = 3
    PRIORITY = 4
    ATTEMPTS = 5
    WHEN = 6
    CREATED = 7
    DURATION = 8
    OUTCOME = 9


HEADERS = ("ID", "Type", "Summary", "Status", "Priority", "Attempts", "Scheduled / next retry", "Created",
           "Duration", "Result or error")  # fmt: skip


class Role(IntEnum):
    JOB = Qt.ItemDataRole.UserRole + 1  # the whole job dict
    ID = Qt.ItemDataRole.UserRole + 2
    STATUS = Qt.ItemDataRole.UserRole + 3
    PROGRESS = Qt.ItemDataRole.UserRole + 4  # latest job.progress payload of a running job, or None
    SORT = Qt.ItemDataRole.UserRole + 5  # a value that sorts naturally (numbers, ISO times)


_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_JOB, _ID, _STATUS, _PROGRESS, _SORT = (int(r) for r in (Role.JOB, Role.ID, Role.STATUS, Role.PROGRESS, Role.SORT))

TYPE_LABELS = {"send_email": "Email", "upload_file": "Upload"}


@dataclass
class Filter:
    """What the table shows; the server applies it to snapshots, ``matches`` applies it to events."""

    statuses: tuple[str, ...] = ()
    job_type: str = ""
    search: str = ""

    def matches(self, job: dict[str, Any]) -> bool:
        if self.statuses and job.get("status") not in self.statuses:
            return False
        if self.job_type and job.get("job_type") != self.job_type:
            return False
        return not self.search or fmt.matches_search(job, self.search)

    def list_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.statuses:
            args["status"] = list(self.statuses)
        if self.job_type:
            args["job_type"] = self.job_type
        if self.search:
            args["search"] = self.search
        return args


@dataclass
class _Row:
    job: dict[str, Any]
    cells: list[str] | None = field(default=None)  # display strings, computed on first paint


class JobTableModel(QAbstractTableModel):
    """Rows are jobs matching the current filter with id ≥ the oldest loaded one, newest first.

    Keeping exactly that set (events insert jobs entering the filter and remove jobs leaving it) means the row
    count is also the server-side offset of the next page, so offset paging stays correct while events arrive.
    """

    fetch_requested = Signal(int)  # offset of the next page; the owner fetches it and calls append_page

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._keys: list[int] = []  # -id, ascending == id descending
        self._rows: dict[int, _Row] = {}
        self._progress: dict[int, dict[str, Any]] = {}
        self.filter = Filter()
        self.base_seq = 0  # events at or below this seq are already in the snapshot
        self._exhausted = True
        self._fetching = False

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell on every repaint: compare plain ints, return early.
        row_no = index.row()
        if not 0 <= row_no < len(self._keys) or not index.isValid():
            return None
        job_id = -self._keys[row_no]
        row = self._rows[job_id]
        col = index.column()
        if role == _DISPLAY:
            if row.cells is None:
                row.cells = _cells(row.job)
            return row.cells[col]
        if role == _TOOLTIP:
            return self._tooltip(job_id, row, col)
        if role == _STATUS:
            return row.job.get("status")
        if role == _PROGRESS:
            return self._progress.get(job_id) if row.job.get("status") == "running" else None
        if role == _ID:
            return job_id
        if role == _JOB:
            return row.job
        if role == _SORT:
            return _sort_value(row.job, col)
        if role == _ALIGN and col in (Col.ID, Col.PRIORITY, Col.ATTEMPTS, Col.DURATION):
            return _RIGHT
        return None

    def cell(self, row_no: int, col: int) -> str:
        """The display text of a cell without a trip through Qt: the table's delegates paint from this."""
        row = self._rows[-self._keys[row_no]]
        if row.cells is None:
            row.cells = _cells(row.job)
        return row.cells[col]

    def progress_at(self, row_no: int) -> dict[str, Any] | None:
        """The latest progress of the job in this row while it runs, else None."""
        job_id = -self._keys[row_no]
        return self._progress.get(job_id) if self._rows[job_id].job.get("status") == "running" else None

    def _tooltip(self, job_id: int, row: _Row, col: int) -> str | None:
        if col == Col.OUTCOME and row.job.get("status") == "running" and job_id in self._progress:
            return fmt.progress_detail(self._progress[job_id])
        if col == Col.OUTCOME:
            return fmt.outcome_detail(row.job) or None
        if col == Col.SUMMARY:
            if row.cells is None:
                row.cells = _cells(row.job)
            return row.cells[col] or None
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self._exhausted and not self._fetching

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._fetching = True
            self.fetch_requested.emit(len(self._keys))

    # ------------------------------------------------------------------ loading
    def reset(self, jobs: list[dict[str, Any]], *, seq: int, page_size: int, filt: Filter | None = None) -> None:
        """A fresh snapshot (first load or filter change)."""
        self.beginResetModel()
        if filt is not None:
            self.filter = filt
        self._rows = {int(j["id"]): _Row(j) for j in jobs}
        self._keys = sorted(-i for i in self._rows)
        self._progress = {k: v for k, v in self._progress.items() if k in self._rows}
        self.base_seq = seq
        self._exhausted = len(jobs) < page_size
        self._fetching = False
        self.endResetModel()

    def append_page(self, jobs: list[dict[str, Any]], page_size: int) -> None:
        """An older page from offset paging; rows already present (moved by events) are skipped."""
        self._fetching = False
        fresh = [j for j in jobs if int(j["id"]) not in self._rows]
        if len(jobs) < page_size:
            self._exhausted = True
        if not fresh:
            return
        oldest = -self._keys[-1] if self._keys else None
        tail = [j for j in fresh if oldest is None or int(j["id"]) < oldest]
        if oldest is not None:
            self._insert_jobs([j for j in fresh if int(j["id"]) > oldest])
        if tail:
            first = len(self._keys)
            self.beginInsertRows(QModelIndex(), first, first + len(tail) - 1)
            for job in sorted(tail, key=lambda j: -int(j["id"])):
                self._rows[int(job["id"])] = _Row(job)
                self._keys.append(-int(job["id"]))
            self.endInsertRows()

    def fetch_failed(self) -> None:
        self._fetching = False

    # ------------------------------------------------------------------ live updates
    def apply_events(self, events: list[dict[str, Any]]) -> set[int]:
        """Apply a batch of job events (coalesced per job); returns the ids that changed.

        Rows are removed and inserted in contiguous blocks and updates are announced as a few row ranges, not
        one signal per event: every signal costs the proxy and the view work proportional to the loaded rows.
        """
        latest: dict[int, dict[str, Any]] = {}
        for event in events:
            if int(event.get("seq") or 0) <= self.base_seq:
                continue
            job = event.get("job") or {}
            if "id" in job:
                latest[int(job["id"])] = event
        gone: list[int] = []
        changed: list[int] = []
        later: list[dict[str, Any]] = []
        for job_id, event in latest.items():
            job = event["job"]
            existing = self._rows.get(job_id)
            if event.get("type") == "job.deleted" or not self.filter.matches(job):
                self._progress.pop(job_id, None)
                if existing is not None:
                    gone.append(job_id)
            elif existing is not None:
                existing.job = job
                existing.cells = None
                if job.get("status") != "running":
                    self._progress.pop(job_id, None)
                changed.append(job_id)
            else:
                later.append(job)
        self._remove_rows(gone)
        self._announce_changed([row for job_id in changed if (row := self.row_of(job_id)) is not None])
        self._insert_jobs(later)
        return set(latest)

    def apply_progress(self, updates: dict[int, dict[str, Any]]) -> None:
        rows = []
        for job_id, progress in updates.items():
            self._progress[job_id] = progress
            row = self.row_of(job_id)
            if row is not None:
                rows.append(row)
        self._announce_changed(rows, Col.OUTCOME, [Role.PROGRESS])

    def _insert_jobs(self, jobs: list[dict[str, Any]]) -> None:
        """New rows: those above the newest loaded one in one block, the others at their place."""
        newest = -self._keys[0] if self._keys else 0
        on_top = sorted((j for j in jobs if int(j["id"]) > newest), key=lambda j: -int(j["id"]))
        for job in jobs:
            job_id = int(job["id"])
            if job_id > newest:
                continue
            if self._keys and not self._exhausted and job_id < -self._keys[-1]:
                continue  # older than what is loaded: it will arrive with its page
            pos = bisect.bisect_left(self._keys, -job_id)
            self.beginInsertRows(QModelIndex(), pos, pos)
            self._keys.insert(pos, -job_id)
            self._rows[job_id] = _Row(job)
            self.endInsertRows()
        if on_top:
            self.beginInsertRows(QModelIndex(), 0, len(on_top) - 1)
            self._keys[0:0] = [-int(j["id"]) for j in on_top]
            for job in on_top:
                self._rows[int(job["id"])] = _Row(job)
            self.endInsertRows()

    def _remove_rows(self, job_ids: list[int]) -> None:
        """Remove rows in contiguous runs, bottom up so the earlier row numbers stay valid."""
        rows = [r for job_id in job_ids if (r := self.row_of(job_id)) is not None]
        for first, last in reversed(_runs(sorted(rows))):
            self.beginRemoveRows(QModelIndex(), first, last)
            for key in self._keys[first : last + 1]:
                del self._rows[-key]
            del self._keys[first : last + 1]
            self.endRemoveRows()

    def _announce_changed(self, rows: list[int], column: int | None = None, roles: list[int] | None = None) -> None:
        if not rows:
            return
        first_col, last_col = (column, column) if column is not None else (0, len(HEADERS) - 1)
        for first, last in _runs(sorted(rows)):
            self.dataChanged.emit(self.index(first, first_col), self.index(last, last_col), roles or [])

    # ------------------------------------------------------------------ lookups
    def row_of(self, job_id: int) -> int | None:
        if job_id not in self._rows:
            return None
        return bisect.bisect_left(self._keys, -job_id)

    def job(self, job_id: int) -> dict[str, Any] | None:
        row = self._rows.get(job_id)
        return row.job if row is not None else None

    def job_at(self, row: int) -> dict[str, Any]:
        return self._rows[-self._keys[row]].job

    @property
    def exhausted(self) -> bool:
        return self._exhausted


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and row <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(row, runs[-1][1]))
        else:
            runs.append((row, row))
    return runs


def _cells(job: dict[str, Any]) -> list[str]:
    return [
        str(job.get("id", "")),
        TYPE_LABELS.get(job.get("job_type", ""), job.get("job_type", "")),
        fmt.summary(job),
        fmt.STATUS_LABELS.get(job.get("status", ""), job.get("status", "")),
        str(job.get("priority", "")),
        f"{job.get('attempts', 0)}/{int(job.get('max_retries', 0)) + 1}",
        fmt.when(job),
        fmt.local_time(job.get("created_at"), seconds=False),
        fmt.duration(fmt.job_duration(job)),
        fmt.outcome(job),
    ]


def _sort_value(job: dict[str, Any], col: int) -> Any:
    if col == Col.ID:
        return int(job["id"])
    if col == Col.PRIORITY:
        return int(job.get("priority", 0))
    if col == Col.ATTEMPTS:
        return int(job.get("attempts", 0))
    if col == Col.DURATION:
        return fmt.job_duration(job) or 0.0
    if col == Col.STATUS:
        return fmt.STATUS_ORDER.index(job["status"]) if job.get("status") in fmt.STATUS_ORDER else 99
    if col == Col.CREATED:
        return job.get("created_at") or ""
    if col == Col.WHEN:
        return job.get("next_attempt_at") or job.get("scheduled_time") or ""
    return _cells(job)[col]
