"""Status counts under the type and search filters, kept current from job events without a query per batch."""

from __future__ import annotations

from typing import Any

from desktop.models.jobs import Filter

_SEEN_LIMIT = 200_000  # ids whose last status we remember; past it we forget and let the server reconcile


class LiveCounts:
    """The ``status_counts`` of the jobs ``others`` matches (total, by_status), moved by each event we can account for.

    A job's previous status is known when this client saw the job before (in a snapshot, a page or an event) or the
    event creates it. An update of a job we never saw cannot be counted honestly; ``apply`` then says so and the
    owner asks the server for fresh counts (at a bounded rate) instead of guessing.
    """

    def __init__(self) -> None:
        self.stats: dict[str, Any] | None = None
        self._seen: dict[int, tuple[str, str] | None] = {}  # id → (status, job_type), None if ``others`` missed it
        self.others = Filter()  # the filter the counts are under (its statuses are what is counted)

    def follow(self, others: Filter) -> None:
        """Count under another type and search filter: forget what is known until the server answers."""
        self.others = others
        self.stats = None
        self._seen.clear()

    def _key(self, job: dict[str, Any]) -> tuple[str, str] | None:
        if not self.others.matches_others(job):  # False, or None: a search only the ledger judges
            return None
        return str(job.get("status", "")), str(job.get("job_type", ""))

    def reset(self, stats: dict[str, Any]) -> None:
        """Counts from the server (the truth at the time it answered)."""
        by_status = {str(s): int(n) for s, n in (stats.get("by_status") or {}).items()}
        by_type = {t: dict(per_status) for t, per_status in (stats.get("by_type") or {}).items()}
        self.stats = {**stats, "by_status": by_status, "by_type": by_type}

    def remember(self, jobs: list[dict[str, Any]]) -> None:
        """Jobs seen in a snapshot or page: their current status is the baseline for later events."""
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.clear()
        for job in jobs:
            self._seen[int(job["id"])] = self._key(job)

    def apply(self, events: list[dict[str, Any]]) -> bool:
        """Move the counts by these events (in seq order); False when one of them could not be accounted for."""
        if self.others.search:
            return False  # which jobs a search holds is the ledger's to say: the owner asks it for counts
        exact = True
        stats = self.stats
        for event in events:
            job = event.get("job") or {}
            if "id" not in job:
                continue
            job_id = int(job["id"])
            known = job_id in self._seen
            before = self._seen.get(job_id)
            now = self._key(job)
            deleted = event.get("type") == "job.deleted"
            if deleted:
                self._seen.pop(job_id, None)
            else:
                self._seen[job_id] = now
            if not known and event.get("type") != "job.created":
                exact = False
                continue
            if stats is None:
                continue
            if before is not None:
                self._move(stats, before, -1)
            if now is not None and not deleted:
                self._move(stats, now, +1)
        return exact

    @staticmethod
    def _move(stats: dict[str, Any], key: tuple[str, str], delta: int) -> None:
        status, job_type = key
        by_status, by_type = stats["by_status"], stats["by_type"]
        by_status[status] = max(0, by_status.get(status, 0) + delta)
        per_type = by_type.setdefault(job_type, {})
        per_type[status] = max(0, per_type.get(status, 0) + delta)
        stats["total"] = max(0, int(stats.get("total", 0)) + delta)
