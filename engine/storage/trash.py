"""The trash: a deleted job's row is kept, so that a delete can be undone, until it is restored or purged.

A mixin of ``Ledger``: moving a job to the trash is part of the delete transaction (``to_trash``); restoring puts
the row back under its own id (ids are never handed out twice), with a ``restored``
event, in the same kind of batched transactions as every bulk action.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, delete, func, insert, select, true

from engine.storage.reads import ids_in
from engine.storage.rows import iso, job_to_dict, utcnow
from engine.storage.tables import JOBS, TRASH, UtcDateTime

TRASH_BATCH = 200  # rows one restore statement writes back
_TIMES = frozenset(c.key for c in JOBS.c if isinstance(c.type, UtcDateTime))


def new_batch() -> str:
    """The mark of one delete's jobs in the trash: what its "Undo" restores."""
    return uuid.uuid4().hex


class LedgerTrash:
    engine: Engine
    _write: Callable[..., Any]
    _record_many: Callable[..., Any]

    def to_trash(self, tx: Any, rows: Sequence[dict[str, Any]], batch: str) -> None:
        """Inside a delete's transaction: keep the deleted rows (as the DELETE … RETURNING gave them)."""
        now = utcnow()
        for start in range(0, len(rows), TRASH_BATCH):
            chunk = rows[start : start + TRASH_BATCH]
            values = [{"job_id": r["id"], "job_type": r["job_type"], "status": r["status"], "deleted_at": now,
                       "batch": batch, "row": _to_json(r)} for r in chunk]  # fmt: skip
            tx.run(insert(TRASH).values(values))

    def trash_list(self, *, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The trashed jobs, most recently deleted first, each as the job JSON with its ``deleted_at``."""
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(TRASH)).scalar_one()
            rows = conn.execute(
                select(TRASH).order_by(TRASH.c.deleted_at.desc(), TRASH.c.trash_id.desc()).limit(limit).offset(offset)
            ).all()
        return [{**job_to_dict(_from_json(r.row)), "deleted_at": iso(r.deleted_at)} for r in rows], total

    def trashed_ids(self, ids: Sequence[int]) -> set[int]:
        """Which of these job ids the trash holds."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(TRASH.c.job_id).where(_which(ids, None))).scalars())

    def restore(
        self, *, ids: Sequence[int] | None = None, batch: str | None = None, outbox: Callable[[Any, Any], None]
    ) -> list[dict[str, Any]]:
        """Put trashed jobs back (the job ids given, or one delete's ``batch``), each with a ``restored`` event;
        ``outbox`` gets those that wait to run, as for any transition that makes a job runnable."""
        where = _which(ids, batch)
        restored: list[dict[str, Any]] = []
        while True:

            def op(tx: Any) -> list[dict[str, Any]]:
                found = tx.run(select(TRASH).where(where).order_by(TRASH.c.trash_id).limit(TRASH_BATCH))
                if not found:
                    return []
                rows = [_from_json(r["row"]) for r in found]
                taken = {r["id"] for r in tx.run(select(JOBS.c.id).where(ids_in(row["id"] for row in rows)))}
                jobs: list[dict[str, Any]] = []
                for row in rows:
                    if row["id"] in taken:  # a ledger from before revision 0005 reused ids: this one gets a new id
                        row = {k: v for k, v in row.items() if k != "id"}
                        jobs.extend(job_to_dict(r) for r in tx.run(insert(JOBS).values(row).returning(*JOBS.c)))
                free = [row for row in rows if row["id"] not in taken]
                if free:
                    jobs.extend(job_to_dict(r) for r in tx.run(insert(JOBS).values(free).returning(*JOBS.c)))
                jobs.sort(key=lambda job: job["id"])
                tx.run(delete(TRASH).where(ids_in((r["trash_id"] for r in found), TRASH.c.trash_id)))
                self._record_many(tx, [(job, "restored", {}) for job in jobs])
                for job in jobs:
                    outbox(tx.cursor, job)
                return jobs

            jobs = self._write(op)
            if not jobs:
                return restored
            restored.extend(jobs)

    def purge(
        self, *, ids: Sequence[int] | None = None, older_than: datetime | None = None, everything: bool = False
    ) -> int:
        """Remove trashed jobs for good: the job ids given, those deleted before ``older_than``, or all."""
        if everything:
            where: ColumnElement[bool] = true()
        elif older_than is not None:
            where = TRASH.c.deleted_at < older_than
        else:
            where = _which(ids, None)
        with self.engine.begin() as conn:
            return int(conn.execute(delete(TRASH).where(where)).rowcount)


def _which(ids: Sequence[int] | None, batch: str | None) -> ColumnElement[bool]:
    conditions = []
    if ids is not None:
        conditions.append(ids_in(ids, TRASH.c.job_id))
    if batch is not None:
        conditions.append(TRASH.c.batch == batch)
    if not conditions:
        raise ValueError("name the trashed jobs: ids or a batch")
    return and_(*conditions)


def _to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if k in _TIMES else v for k, v in row.items()}


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    columns = set(JOBS.c.keys())  # a column dropped since the job was trashed is left out
    row = {k: v for k, v in data.items() if k in columns}
    for key in _TIMES & row.keys():
        row[key] = datetime.fromisoformat(row[key]) if row[key] else None
    return row
