"""The Transfers view's model: active and recent uploads, one row a file, newest first, with each one's live progress.

Fed by the same job events and progress events as the jobs table (any filter the table has does not apply here),
after a snapshot of the uploads that are active and the latest finished ones. No I/O.
"""

from __future__ import annotations

import bisect
import os
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop.models import format as fmt
from desktop.models import job_text
from desktop.models.meta import EngineMeta

Index = QModelIndex | QPersistentModelIndex
UPLOAD = "upload_file"
ACTIVE = ("running", "pending", "scheduled", "retrying")
FINISHED = ("succeeded", "failed", "canceled")
MAX_FINISHED = 100  # recent finished uploads kept; older ones leave the list (they stay in the jobs table)


class TCol(IntEnum):
    FILE = 0
    SIZE = 1
    PROGRESS = 2
    STATUS = 3


HEADERS = ("File", "Size", "Progress", "Status")


class TRole(IntEnum):
    JOB = Qt.ItemDataRole.UserRole + 1
    SHARE = Qt.ItemDataRole.UserRole + 2  # 0–1 for a bar, None for text only
    VARIANTS = Qt.ItemDataRole.UserRole + 3  # the progress text, longest first, for the bar to pick what fits


class TransfersModel(QAbstractTableModel):
    """Uploads by id, newest on top; a finished one stays (up to MAX_FINISHED) so that the list says how it ended."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._jobs: list[dict[str, Any]] = []  # newest first
        self._ids: list[int] = []  # negated ids, ascending: the row order, for bisect
        self._progress: dict[int, dict[str, Any]] = {}
        self.base_seq = 0
        self.now: datetime | None = None  # tests pin the clock; None: the real one
        self.worker_down = False  # running rows say so instead of freezing at their last progress
        self.meta = EngineMeta(self)  # status labels as the engine gives them (the window's, once shown there)

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < 4:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._jobs):
            return None
        job = self._jobs[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(job, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(job, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == TCol.SIZE:
            return int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)
        if role == TRole.JOB:
            return job
        if role == TRole.SHARE:
            return self.share(job)
        if role == TRole.VARIANTS:
            return self.variants(job)
        return None

    # ------------------------------------------------------------------ what a row says
    def progress(self, job: dict[str, Any]) -> dict[str, Any] | None:
        if job.get("status") != "running" or self.worker_down:
            return None
        return self._progress.get(int(job["id"]))

    def set_worker_down(self, down: bool) -> None:
        if down != self.worker_down:
            self.worker_down = down
            if down:
                self._progress.clear()
            if self._jobs:
                self.dataChanged.emit(self.index(0, TCol.PROGRESS), self.index(len(self._jobs) - 1, TCol.STATUS))

    def share(self, job: dict[str, Any]) -> float | None:
        """How much of the bar is filled: the progress of a running upload, full for a finished one."""
        if job.get("status") == "succeeded":
            return 1.0
        progress = self.progress(job)
        return fmt.progress_share(progress) if progress else None

    def variants(self, job: dict[str, Any]) -> list[str]:
        """The progress cell's text, longest first."""
        progress = self.progress(job)
        if progress:
            return fmt.progress_compact_variants(progress)
        status = job.get("status")
        if status == "succeeded":
            return ["Done"]
        if status == "running":
            return ["Waiting for the worker" if self.worker_down else "Starting…"]
        return [""]

    def _text(self, job: dict[str, Any], col: int) -> str:
        params = job.get("parameters") or {}
        if col == TCol.FILE:
            return os.path.basename(str(params.get("path", "")).replace("\\", "/"))
        if col == TCol.SIZE:
            return fmt.size(params.get("size"))
        if col == TCol.PROGRESS:
            return self.variants(job)[0]
        return self.status_text(job)

    def status_text(self, job: dict[str, Any]) -> str:
        """ "Uploading" (or "Canceling"), "Retry in 4 min 12 s", "Failed: <why>", "Succeeded"."""
        status = str(job.get("status", ""))
        if status == "running":
            if self.worker_down:
                return "Worker not running"
            return job_text.CANCELING if job_text.canceling(job) else "Uploading"
        if status == "failed":
            return f"Failed: {fmt.outcome(job)}"
        if status in ("retrying", "scheduled"):
            return job_text.state_line(job, self.now or datetime.now(UTC))
        if status == "pending":
            return "Waiting"
        result = job.get("result")
        if status == "succeeded" and isinstance(result, dict) and result.get("skipped"):
            return "Skipped: already there"
        return self.meta.status_label(status)

    def _tooltip(self, job: dict[str, Any], col: int) -> str | None:
        params = job.get("parameters") or {}
        if col == TCol.FILE:
            return f"{params.get('path', '')}\n→ s3://{params.get('bucket', '')}/{params.get('key', '')}"
        if col == TCol.PROGRESS and (progress := self.progress(job)):
            return fmt.progress_detail(progress)
        if col == TCol.STATUS:
            return fmt.outcome_detail(job) or self.status_text(job)
        return None

    # ------------------------------------------------------------------ feeding
    def reset(self, jobs: list[dict[str, Any]], seq: int) -> None:
        """A snapshot (the active uploads and the latest finished ones) read at ``seq``."""
        self.beginResetModel()
        uploads = {int(j["id"]): j for j in jobs if j.get("job_type") == UPLOAD}
        ordered = sorted(uploads.values(), key=lambda j: -int(j["id"]))
        self._jobs = ordered
        self._ids = [-int(j["id"]) for j in ordered]
        self._progress = {k: v for k, v in self._progress.items() if k in uploads}
        self.base_seq = seq
        self.endResetModel()
        self._trim()

    def apply_events(self, events: list[dict[str, Any]]) -> None:
        """Job events newer than the snapshot: new uploads on top, changed ones in place, deleted ones out."""
        for event in events:
            job = event.get("job") or {}
            if job.get("job_type") != UPLOAD or int(event.get("seq") or 0) <= self.base_seq:
                continue
            job_id = int(job["id"])
            row = self.row_of(job_id)
            if event.get("type") == "job.deleted":
                if row is not None:
                    self.beginRemoveRows(QModelIndex(), row, row)
                    del self._jobs[row], self._ids[row]
                    self.endRemoveRows()
                self._progress.pop(job_id, None)
                continue
            if job.get("status") != "running":
                self._progress.pop(job_id, None)
            if row is not None:
                self._jobs[row] = job
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))
                continue
            at = bisect.bisect_left(self._ids, -job_id)
            self.beginInsertRows(QModelIndex(), at, at)
            self._jobs.insert(at, job)
            self._ids.insert(at, -job_id)
            self.endInsertRows()
        self._trim()

    def apply_progress(self, updates: dict[int, dict[str, Any]]) -> None:
        for job_id, progress in updates.items():
            row = self.row_of(job_id)
            if row is None:
                continue
            self._progress[job_id] = progress
            self.dataChanged.emit(self.index(row, TCol.PROGRESS), self.index(row, TCol.PROGRESS))

    def tick(self) -> None:
        """The clock moved: rows that count down ("Retry in 12 s") say so."""
        for row, job in enumerate(self._jobs):
            if job.get("status") in ("retrying", "scheduled"):
                self.dataChanged.emit(self.index(row, TCol.STATUS), self.index(row, TCol.STATUS))

    def clear_finished(self) -> int:
        """Take the finished uploads off the list (they stay jobs); returns how many."""
        keep = [j for j in self._jobs if j.get("status") not in FINISHED]
        gone = len(self._jobs) - len(keep)
        if gone:
            self.beginResetModel()
            self._jobs = keep
            self._ids = [-int(j["id"]) for j in keep]
            self.endResetModel()
        return gone

    def _trim(self) -> None:
        """Keep the newest MAX_FINISHED finished uploads; active ones always stay."""
        finished = [r for r, j in enumerate(self._jobs) if j.get("status") in FINISHED]
        for row in reversed(finished[MAX_FINISHED:]):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._jobs[row], self._ids[row]
            self.endRemoveRows()

    # ------------------------------------------------------------------ lookups
    def row_of(self, job_id: int) -> int | None:
        at = bisect.bisect_left(self._ids, -job_id)
        return at if at < len(self._ids) and self._ids[at] == -job_id else None

    def job_at(self, row: int) -> dict[str, Any]:
        return self._jobs[row] if 0 <= row < len(self._jobs) else {}

    def summary(self) -> dict[str, Any]:
        """Counts by state and, for the uploads running now, bytes done of total and the combined rate."""
        counts = {"running": 0, "waiting": 0, "finished": 0, "failed": 0}
        done = total = rate = 0.0
        for job in self._jobs:
            status = job.get("status")
            if status == "running":
                counts["running"] += 1
                progress = self._progress.get(int(job["id"])) or {}
                size = (job.get("parameters") or {}).get("size") or progress.get("total") or 0
                done += progress.get("done") or 0
                total += size
                rate += progress.get("rate") or 0
            elif status in ACTIVE:
                counts["waiting"] += 1
            else:
                counts["finished"] += 1
                counts["failed"] += status == "failed"
        return {**counts, "done": done, "total": total, "rate": rate}
