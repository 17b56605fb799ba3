"""The live jobs table: a window on the ledger's ordered, filtered jobs, paged in as rows come into view."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal

from desktop.models import format as fmt
from desktop.models import plain_text
from desktop.models.job_text import CANCELING, canceling
from desktop.models.meta import EngineMeta

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
           "Duration", "Progress or result")  # fmt: skip


class Role(IntEnum):
    JOB = Qt.ItemDataRole.UserRole + 1  # the whole job dict
    ID = Qt.ItemDataRole.UserRole + 2
    STATUS = Qt.ItemDataRole.UserRole + 3
    PROGRESS = Qt.ItemDataRole.UserRole + 4  # latest job.progress payload of a running job, or None
    STALE = Qt.ItemDataRole.UserRole + 5  # the job no longer matches the view (shown dimmed until a refresh)


_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
_JOB, _ID, _STATUS, _PROGRESS, _STALE = (int(r) for r in (Role.JOB, Role.ID, Role.STATUS, Role.PROGRESS, Role.STALE))


# The ledger's order for each column (``engine.storage.reads.SORT_KEYS``).
SORT_KEY_OF: dict[int, str] = {Col.ID: "id", Col.TYPE: "job_type", Col.SUMMARY: "summary", Col.STATUS: "status",
                               Col.PRIORITY: "priority", Col.ATTEMPTS: "attempts", Col.WHEN: "when",
                               Col.CREATED: "created_at", Col.DURATION: "duration",
                               Col.OUTCOME: "outcome"}  # fmt: skip
PAGE = 200  # rows a page request brings
MAX_PAGES = 60  # pages kept; the farthest from the last one wanted are dropped beyond this
MAX_WAITING_NEW = 10_000  # new jobs held while the view is scrolled away; past this the view reloads on return


@dataclass(frozen=True)
class Filter:
    """What the table shows and in which order; the ledger applies it to pages, ``matches`` applies it to events."""

    statuses: tuple[str, ...] = ()
    job_type: str = ""
    search: str = ""
    sort: str = "id"
    descending: bool = True

    def matches(
        self, job: dict[str, Any], before: dict[str, Any] | None = None, searched: tuple[str, ...] = ()
    ) -> bool | None:
        """Whether the view shows ``job``; None when only the ledger can tell (see ``matches_others``)."""
        if self.statuses and job.get("status") not in self.statuses:
            return False
        return self.matches_others(job, before, searched)

    def matches_others(
        self, job: dict[str, Any], before: dict[str, Any] | None = None, searched: tuple[str, ...] = ()
    ) -> bool | None:
        """The filter without its status: what the status buttons' counts follow.

        A search is the ledger's to judge (the window keeps no copy of it): a job the ledger found (``before``, as
        it was read) still matches while the fields the search covers (``searched``, from ``meta``) are unchanged;
        anything else is None, and the view asks the ledger again."""
        if self.job_type and job.get("job_type") != self.job_type:
            return False
        if not self.search:
            return True
        if before is not None and searched and all(before.get(f) == job.get(f) for f in searched):
            return True
        return None

    @property
    def narrowed(self) -> bool:
        return bool(self.statuses or self.job_type or self.search)

    @property
    def newest_first(self) -> bool:
        """The ledger's own order: new jobs belong at the top, so they can be shown as they arrive."""
        return self.sort == "id" and self.descending

    def query_args(self) -> dict[str, Any]:
        """The filter as the engine's query arguments (for lists, counts and bulk actions)."""
        args: dict[str, Any] = {}
        if self.statuses:
            args["status"] = list(self.statuses)
        if self.job_type:
            args["job_type"] = self.job_type
        if self.search:
            args["search"] = self.search
        return args

    def list_args(self) -> dict[str, Any]:
        return {**self.query_args(), "sort": self.sort, "descending": self.descending}


@dataclass
class _Row:
    job: dict[str, Any]
    cells: list[str] | None = field(default=None)  # display strings, computed on first paint
    stale: bool = False  # the job no longer matches (or was deleted) since it was read: shown dimmed


class JobTableModel(QAbstractTableModel):
    """A window on the ledger's ordered result: ``rowCount`` is every matching job, rows arrive a page at a time.

    The rows are the snapshot the view took (jobs up to ``max_id`` matching the filter, ``total`` of them, in the
    filter's order, paged by offset in the ledger) plus, in the newest-first order, the jobs created since, on
    top. A page is asked for (``fetch_requested``) when a row of it is first painted, so dragging the scroll bar
    anywhere or pressing End fetches only the rows in view. Events update loaded rows in place; a job that stops
    matching is dimmed rather than removed (rows never shift under the reader); new jobs are inserted on top while
    the view follows the top, and only counted ("N new jobs") while it is scrolled away.
    """

    fetch_requested = Signal(int)  # a page number; the owner fetches it and calls set_page
    new_jobs_changed = Signal(int)  # new jobs waiting above a view scrolled away from the top
    stale_changed = Signal()  # some loaded row no longer matches or sorts elsewhere: a refresh would fix it
    counted_changed = Signal()  # the snapshot's size became known (its first page came before its count)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._top: list[_Row] = []  # jobs created after the snapshot, oldest first (row 0 is the last)
        self._top_at: dict[int, int] = {}  # job id → its place in _top
        self._pages: dict[int, list[_Row]] = {}
        self._where: dict[int, int] = {}  # job id → snapshot row, for loaded rows
        self._asked: set[int] = set()
        self._waiting: dict[int, dict[str, Any]] = {}  # new jobs not shown yet (view scrolled away)
        self._progress: dict[int, dict[str, Any]] = {}
        self.filter = Filter()
        self.total = 0
        self.max_id = 0
        self.base_seq = 0  # events at or below this seq are already in the snapshot
        self.following = True  # the view shows its first row
        self.stale = False
        self.loaded = False
        self.worker_note = ""  # while the worker is down: what running rows say instead of their last progress
        self.counted = False  # ``total`` is the snapshot's real size, not just the rows of its first page
        self.meta = EngineMeta(self)  # labels and summaries, as the engine gives them (see ``set_meta``)

    def set_meta(self, meta: EngineMeta) -> None:
        """Label statuses and types and summarise jobs as ``meta`` says, now and whenever it changes."""
        self.meta = meta
        meta.changed.connect(self._on_meta_changed)
        self._on_meta_changed()

    def _on_meta_changed(self) -> None:
        for row in [*self._top, *(r for page in self._pages.values() for r in page)]:
            row.cells = None
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(HEADERS) - 1))

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._top) + self.total

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

    def _row(self, row_no: int) -> _Row | None:
        """The row's job if its page is here; otherwise asks for the page and returns None."""
        top = len(self._top)
        if row_no < top:
            return self._top[top - 1 - row_no]
        page_no, at = divmod(row_no - top, PAGE)
        page = self._pages.get(page_no)
        if page is None:
            if page_no not in self._asked:
                self._asked.add(page_no)
                self.fetch_requested.emit(page_no)
            return None
        return page[at] if at < len(page) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Called for every visible cell on every repaint: compare plain ints, return early.
        row_no = index.row()
        if not 0 <= row_no < self.rowCount() or not index.isValid():
            return None
        row = self._row(row_no)
        if row is None:
            return "" if role == _DISPLAY else None
        job_id = int(row.job["id"])
        col = index.column()
        if role == _DISPLAY:
            return self.cell(row_no, col)
        if role == _TOOLTIP:
            return plain_text.tooltip(self._tooltip(job_id, row, col))
        if role == _STATUS:
            return row.job.get("status")
        if role == _PROGRESS:
            return self.progress_at(row_no)
        if role == _ID:
            return job_id
        if role == _JOB:
            return row.job
        if role == _STALE:
            return row.stale
        if role == _ALIGN and col in (Col.ID, Col.PRIORITY, Col.ATTEMPTS, Col.DURATION):
            return _RIGHT
        return None

    def cell(self, row_no: int, col: int) -> str:
        """The display text of a cell without a trip through Qt: the table's delegates paint from this."""
        row = self._row(row_no)
        if row is None:
            return ""
        if col == Col.OUTCOME and self.worker_note and row.job.get("status") == "running":
            return self.worker_note
        if row.cells is None:
            row.cells = _cells(row.job, self.meta)
        return row.cells[col]

    def set_worker_note(self, note: str) -> None:
        """While the worker is down, running rows say so instead of freezing at their last progress."""
        if note != self.worker_note:
            self.worker_note = note
            if self.rowCount():
                self.dataChanged.emit(self.index(0, Col.OUTCOME), self.index(self.rowCount() - 1, Col.OUTCOME))

    def is_stale(self, row_no: int) -> bool:
        row = self._row(row_no)
        return row is not None and row.stale

    def progress_at(self, row_no: int) -> dict[str, Any] | None:
        """The latest progress of the job in this row while it runs, else None."""
        row = self._row(row_no)
        if row is None or row.job.get("status") != "running" or self.worker_note:
            return None
        return self._progress.get(int(row.job["id"]))

    def _tooltip(self, job_id: int, row: _Row, col: int) -> str | None:
        if col == Col.OUTCOME and row.job.get("status") == "running" and self.worker_note:
            return self.worker_note
        if col == Col.OUTCOME and row.job.get("status") == "running" and job_id in self._progress:
            return fmt.progress_detail(self._progress[job_id])
        if col == Col.OUTCOME:
            return fmt.outcome_detail(row.job) or None
        if col == Col.SUMMARY:
            if row.cells is None:
                row.cells = _cells(row.job, self.meta)
            return row.cells[col] or None
        return None

    # ------------------------------------------------------------------ loading
    def reset(
        self,
        jobs: list[dict[str, Any]],
        *,
        seq: int,
        total: int | None = None,
        max_id: int | None = None,
        filt: Filter | None = None,
        counted: bool = True,
    ) -> None:
        """A fresh snapshot (first load, filter or sort change, refresh): its first page, its size and bound.

        ``counted`` false: ``total`` is only what the first page holds until ``set_total`` brings the count."""
        self.beginResetModel()
        if filt is not None:
            self.filter = filt
        self.total = len(jobs) if total is None else total
        self.max_id = max((int(j["id"]) for j in jobs), default=0) if max_id is None else max_id
        self._top = []
        self._top_at = {}
        self._pages = {}
        self._where = {}
        self._asked = set()
        self._waiting = {}
        self._store(0, jobs)
        self._progress = {k: v for k, v in self._progress.items() if k in self._where}
        self.base_seq = seq
        self.stale = False
        self.loaded = True
        self.counted = counted
        self.endResetModel()
        self.new_jobs_changed.emit(0)

    def set_total(self, total: int) -> None:
        """The snapshot's size, counted after its first page arrived: rows are added (or taken) at the end."""
        rows = len(self._top)
        if total > self.total:
            self.beginInsertRows(QModelIndex(), rows + self.total, rows + total - 1)
            self.total = total
            self.endInsertRows()
        elif total < self.total:
            self.beginRemoveRows(QModelIndex(), rows + total, rows + self.total - 1)
            self.total = total
            for page_no in [p for p in self._pages if p * PAGE >= total]:
                for row in self._pages.pop(page_no):
                    self._where.pop(int(row.job["id"]), None)
            self.endRemoveRows()
        if not self.counted:
            self.counted = True
            self.counted_changed.emit()

    def set_page(self, page_no: int, jobs: list[dict[str, Any]]) -> None:
        """A page the view asked for (``jobs`` in the filter's order, read under ``max_id``)."""
        self._asked.discard(page_no)
        if page_no in self._pages or page_no * PAGE >= self.total:
            return
        self._store(page_no, jobs)
        self._forget_far_pages(page_no)
        first = len(self._top) + page_no * PAGE
        last = min(first + PAGE, self.rowCount()) - 1
        if last >= first:
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(HEADERS) - 1), [])

    def fetch_failed(self, page_no: int) -> None:
        self._asked.discard(page_no)

    def _store(self, page_no: int, jobs: list[dict[str, Any]]) -> None:
        rows = [_Row(j) for j in jobs[: max(0, min(PAGE, self.total - page_no * PAGE))]]
        self._pages[page_no] = rows
        for at, row in enumerate(rows):
            self._where[int(row.job["id"])] = page_no * PAGE + at

    def _forget_far_pages(self, near: int) -> None:
        if len(self._pages) <= MAX_PAGES:
            return
        for page_no in sorted(self._pages, key=lambda p: -abs(p - near))[: len(self._pages) - MAX_PAGES]:
            if page_no == 0:
                continue  # the top stays: the view returns there most
            for row in self._pages.pop(page_no):
                self._where.pop(int(row.job["id"]), None)

    def page_query(self, page_no: int) -> dict[str, Any]:
        """The list arguments for one page: from the far end in reverse when that is nearer, so the last rows of
        a million cost what the first rows cost."""
        offset = page_no * PAGE
        limit = max(1, min(PAGE, self.total - offset))
        args = {**self.filter.list_args(), "max_id": self.max_id, "count": False, "limit": limit}
        if offset > self.total // 2:
            return {**args, "descending": not self.filter.descending, "offset": self.total - offset - limit,
                    "reverse": True}  # fmt: skip
        return {**args, "offset": offset}

    # ------------------------------------------------------------------ live updates
    def set_following(self, following: bool) -> None:
        """Whether the view shows its first row; on return to the top the waiting new jobs are shown."""
        self.following = following
        if following and self._waiting:
            if self.filter.newest_first:
                self._show_new(list(self._waiting.values()))
            else:  # their places are somewhere in the order: the view is read again
                self._mark_stale()
            self._waiting = {}
            self.new_jobs_changed.emit(0)

    def apply_events(self, events: list[dict[str, Any]]) -> set[int]:
        """Apply a batch of job events (coalesced per job); returns the ids that changed.

        Updates are announced as a few row ranges, not one signal per event: every signal costs the view work.
        """
        latest: dict[int, dict[str, Any]] = {}
        for event in events:
            if int(event.get("seq") or 0) <= self.base_seq:
                continue
            job = event.get("job") or {}
            if "id" in job:
                latest[int(job["id"])] = event
        changed: list[int] = []
        fresh: list[dict[str, Any]] = []
        stale = False
        for job_id, event in latest.items():
            job = event["job"]
            deleted = event.get("type") == "job.deleted"
            row_no = self.row_of(job_id)
            if row_no is not None:
                row = self._row(row_no)
                assert row is not None
                verdict = self.filter.matches(job, None if row.stale else row.job, self.meta.search_fields)
                gone = deleted or verdict is False
                stale = stale or verdict is None  # a search the ledger must judge again: a refresh does
                moved = not gone and self.filter.sort != "id" and _sort_key(row.job, self.filter.sort) != _sort_key(
                    job, self.filter.sort)  # fmt: skip
                stale = stale or gone or moved
                row.job, row.cells, row.stale = job, None, gone
                if job.get("status") != "running":
                    self._progress.pop(job_id, None)
                changed.append(row_no)
            elif job_id in self._waiting:
                verdict = self.filter.matches(job, self._waiting[job_id], self.meta.search_fields)
                if deleted or not verdict:
                    del self._waiting[job_id]
                    stale = stale or (verdict is None and not deleted)
                else:
                    self._waiting[job_id] = job
            elif not deleted and (verdict := self.filter.matches(job)) is not False:
                if verdict and job_id > self.max_id and (self.filter.newest_first or not self.following):
                    fresh.append(job)  # on top, or (another order) counted until the view returns to its top
                else:
                    stale = True  # it belongs somewhere in the snapshot, in another order or only the ledger knows
        self._announce_changed(changed)
        if fresh:
            if self.following:
                self._show_new(fresh)
            else:
                for job in fresh:
                    self._waiting[int(job["id"])] = job
                if len(self._waiting) > MAX_WAITING_NEW:
                    stale = True
                self.new_jobs_changed.emit(len(self._waiting))
        if stale:
            self._mark_stale()
        return set(latest)

    def _mark_stale(self) -> None:
        if not self.stale:
            self.stale = True
            self.stale_changed.emit()

    def _show_new(self, jobs: list[dict[str, Any]]) -> None:
        newest = int(self._top[-1].job["id"]) if self._top else self.max_id
        on_top = sorted((j for j in jobs if int(j["id"]) > newest), key=lambda j: int(j["id"]))
        for job in jobs:  # one that arrived after a newer one (rare): at its place among the new rows
            job_id = int(job["id"])
            if job_id <= newest and job_id not in self._top_at:
                at = bisect.bisect_left([int(r.job["id"]) for r in self._top], job_id)
                row_no = len(self._top) - at
                self.beginInsertRows(QModelIndex(), row_no, row_no)
                self._top.insert(at, _Row(job))
                self._top_at = {int(r.job["id"]): i for i, r in enumerate(self._top)}
                self.endInsertRows()
        if on_top:
            self.beginInsertRows(QModelIndex(), 0, len(on_top) - 1)
            for job in on_top:
                self._top_at[int(job["id"])] = len(self._top)
                self._top.append(_Row(job))
            self.endInsertRows()

    @property
    def newest_id(self) -> int:
        """The newest job the view holds: what "all matching" means for an action on it."""
        return int(self._top[-1].job["id"]) if self._top else self.max_id

    @property
    def waiting_new(self) -> int:
        return len(self._waiting)

    def apply_progress(self, updates: dict[int, dict[str, Any]]) -> None:
        rows = []
        for job_id, progress in updates.items():
            self._progress[job_id] = progress
            row = self.row_of(job_id)
            if row is not None:
                rows.append(row)
        self._announce_changed(rows, Col.OUTCOME, [Role.PROGRESS])

    def _announce_changed(self, rows: list[int], column: int | None = None, roles: list[int] | None = None) -> None:
        if not rows:
            return
        first_col, last_col = (column, column) if column is not None else (0, len(HEADERS) - 1)
        for first, last in _runs(sorted(rows)):
            self.dataChanged.emit(self.index(first, first_col), self.index(last, last_col), roles or [])

    # ------------------------------------------------------------------ lookups
    def row_of(self, job_id: int) -> int | None:
        """The row of a loaded job, else None."""
        snapshot_row = self._where.get(job_id)
        if snapshot_row is not None:
            return len(self._top) + snapshot_row
        at = self._top_at.get(job_id)
        return None if at is None else len(self._top) - 1 - at

    def job(self, job_id: int) -> dict[str, Any] | None:
        row_no = self.row_of(job_id)
        row = self._row(row_no) if row_no is not None else None
        return row.job if row is not None else None

    def job_at(self, row_no: int) -> dict[str, Any]:
        """The job in a row, or an empty dict while its page is on its way."""
        row = self._row(row_no)
        return row.job if row is not None else {}

    def loaded_rows(self, first: int, last: int) -> list[int]:
        """The loaded rows among ``first``…``last``, found page by page (a range may span a million rows)."""
        top = len(self._top)
        rows = list(range(first, min(last, top - 1) + 1))
        for page_no, page in self._pages.items():
            start = top + page_no * PAGE
            lo, hi = max(first, start), min(last, start + len(page) - 1)
            rows.extend(range(lo, hi + 1))
        return rows

    def loaded_ids(self, rows: list[int]) -> list[int]:
        """The ids of those rows that are loaded."""
        return [int(job["id"]) for r in rows if (job := self.job_at(r))]


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and row <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(row, runs[-1][1]))
        else:
            runs.append((row, row))
    return runs


def _status_text(job: dict[str, Any], meta: EngineMeta) -> str:
    """The status's label; a running job an operator asked to stop says so until its worker has ended it."""
    if canceling(job):
        return CANCELING
    return meta.status_label(str(job.get("status", "")))


def _cells(job: dict[str, Any], meta: EngineMeta) -> list[str]:
    return [
        str(job.get("id", "")),
        meta.type_label(str(job.get("job_type", ""))),
        meta.summary(job),
        _status_text(job, meta),
        str(job.get("priority", "")),
        f"{job.get('attempts', 0)}/{int(job.get('max_retries', 0)) + 1}",
        fmt.when(job),
        fmt.local_time(job.get("created_at"), seconds=False),
        fmt.duration(fmt.job_duration(job)),
        fmt.outcome(job, meta.link(job)),
    ]


def _sort_key(job: dict[str, Any], key: str) -> Any:
    """The value a job sorts by in the ledger's ``key`` order, compared only to see whether a job moved."""
    if key == "when":
        return job.get("next_attempt_at") or job.get("scheduled_time")
    if key == "duration":
        return fmt.job_duration(job)
    if key == "outcome":
        return (job.get("error") or "")[:100]
    if key == "summary":
        return fmt.summary_order(job)
    return job.get(key)
