"""The ledger's queries: jobs, their history, the event log for replay, and the figures behind the statistics.

A mixin of ``Ledger``: reads never change state, so they live apart from the transitions.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    table,
    true,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from engine.errors import NotFound
from engine.storage.prepared import status_in
from engine.storage.rows import iso, job_to_dict
from engine.storage.status import CLAIMABLE, JobStatus
from engine.storage.tables import EVENTS, JOBS


def ids_in(ids: Iterable[int], column: ColumnElement[int] = JOBS.c.id) -> ColumnElement[bool]:
    """``jobs.id IN (1, 2, …)`` with the ids as SQL literals (integers), so that the ledger's own statement
    compiler (``Prepared``), which has no expanding parameters, can run it."""
    return column.in_([literal_column(str(int(i))) for i in ids])


# The fields a search looks in (case-insensitive substring); front ends learn them from ``meta``. Revision 0008's
# trigram index holds these same texts: a field added here must be added there.
SEARCH_FIELDS = ("parameters", "result", "error")


@dataclass(frozen=True)
class JobQuery:
    """Which jobs a view, a bulk action or the CLI means: the filter, plus the ids a selection names and the
    highest id a view had seen (so that "all matching" is what the operator saw, not what arrived since)."""

    statuses: tuple[str, ...] = ()
    job_type: str | None = None
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    ids: tuple[int, ...] | None = None
    max_id: int | None = None
    # Set by the ledger (``LedgerReads.planned``), never by a front end: the search's text is looked up in the
    # trigram index first, and only the jobs it names are tested.
    search_indexed: bool = False

    @classmethod
    def of(cls, *, status: Sequence[str] | None = None, ids: Sequence[int] | None = None, **rest: Any) -> JobQuery:
        return cls(statuses=tuple(status or ()), ids=tuple(ids) if ids is not None else None, **rest)

    def where(self) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if self.statuses:
            conditions.append(status_in(JobStatus(s) for s in self.statuses))
        if self.job_type:
            conditions.append(JOBS.c.job_type == self.job_type)
        if self.search:
            pattern = f"%{_escape_like(self.search.lower())}%"
            columns = tuple(JOBS.c[name] for name in SEARCH_FIELDS)
            if self.search_indexed:
                conditions.append(_indexed(search_index_query(self.search)))
            conditions.append(or_(*(_Contains(col, pattern) for col in columns)))
        if self.created_after:
            conditions.append(JOBS.c.created_at >= self.created_after)
        if self.created_before:
            conditions.append(JOBS.c.created_at < self.created_before)
        if self.ids is not None:
            conditions.append(ids_in(self.ids))
        if self.max_id is not None:
            conditions.append(JOBS.c.id <= self.max_id)
        return and_(true(), *conditions)


# The orders a view may ask for: name → the expression it sorts by. Revision 0004 indexes each as (expression, id),
# so that the first page of any order, and a page deep inside it, is an index walk. The outcome sorts by the
# error's first 100 characters (an index entry must stay small), the summary by ``SUMMARY_SORT`` (revision 0009).
# Constants are written into the SQL: an index on an expression serves only the same expression, and ``x * ?`` is not
# ``x * 86400000``.
def _sort_expression(key: str, dialect: str) -> ColumnElement[Any]:
    if key == "when":
        return func.coalesce(JOBS.c.next_attempt_at, JOBS.c.scheduled_time)
    if key == "duration":
        if dialect == "sqlite":
            # in whole milliseconds: differences of Julian days carry rounding noise that would split ties
            span = func.julianday(JOBS.c.finished_at) - func.julianday(JOBS.c.started_at)
            return func.round(span * literal_column("86400000"))
        return JOBS.c.finished_at - JOBS.c.started_at
    if key == "outcome":
        return func.substr(JOBS.c.error, literal_column("1"), literal_column("100"))
    if key == "summary":
        return literal_column(SUMMARY_SORT[dialect])
    return JOBS.c[key]


SORT_KEYS = (
    "id", "job_type", "status", "priority", "attempts", "when", "created_at", "duration", "outcome", "summary"
)  # fmt: skip

# The Summary column's order: the text the summary shows (recipient — subject for an email, the file name for an
# upload; other types: their parameters' text), lowered, its first 100 characters; on PostgreSQL in the "C" collation,
# by code point as SQLite compares. Written out in SQL, exactly as revision 0009 indexes it (the window's
# ``format.summary_order`` is the same in Python).
_SQLITE_PATH = "replace(json_extract(parameters, '$.path'), '\\', '/')"
SUMMARY_SORT = {
    "sqlite": (
        "(substr(lower(CASE job_type"
        " WHEN 'send_email' THEN coalesce(json_extract(parameters, '$.recipient'), '') || ' — '"
        " || coalesce(json_extract(parameters, '$.subject'), '')"
        f" WHEN 'upload_file' THEN replace({_SQLITE_PATH}, rtrim({_SQLITE_PATH}, replace({_SQLITE_PATH}, '/', '')), '')"
        " ELSE parameters END), 1, 100))"
    ),
    "postgresql": (
        "(substr(lower(CASE job_type"
        " WHEN 'send_email' THEN coalesce(parameters ->> 'recipient', '') || ' — '"
        " || coalesce(parameters ->> 'subject', '')"
        " WHEN 'upload_file' THEN regexp_replace(parameters ->> 'path', '^.*[/\\\\]', '')"
        ' ELSE CAST(parameters AS TEXT) END), 1, 100) COLLATE "C")'
    ),
}


def sort_keys(key: str, dialect: str, descending: bool) -> list[ColumnElement[Any]]:
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}")
    columns = [JOBS.c.id] if key == "id" else [_sort_expression(key, dialect), JOBS.c.id]
    return [c.desc() if descending else c.asc() for c in columns]


_TYPES_WITH_ERROR = ("failed", "retry_scheduled", "lease_expired")  # events whose snapshot says why


# The search's trigram index (revision 0008, SQLite only): which jobs hold every three-character piece of a search's
# text. A search that names few jobs reads those rows only; one that names many (``@example.com``) reads the table
# in order as before, which is then cheaper than fetching most rows one by one by id. "Many" is more than one job in
# ``SEARCH_INDEX_SHARE`` of the ledger (reading a row in order costs a fifth of fetching it by id), and at least
# ``SEARCH_INDEX_MIN``; finding that out asks the index for at most that many ids.
# The index covers the jobs up to ``indexed_upto`` (see revision 0008): newer ones are read in full.
SEARCH_TABLES = ("jobs_search_parameters", "jobs_search_outcome")
_COVERED = "(SELECT indexed_upto FROM jobs_search_state)"
SEARCH_INDEX_SHARE = 8
SEARCH_INDEX_MIN = 2_000


def search_index_query(text: str) -> str | None:
    """The FTS5 query naming every job whose text can hold ``text`` as a search compares it (see
    ``JobQuery.where``), or None if the index cannot narrow it: text under three characters has no trigram.

    Each trigram of the lowered text is a quoted string of its own, all required: the index keeps no positions, so
    a phrase cannot be asked for, and the test of the rows' own text does the rest. The index folds case (Unicode
    letters as well as ASCII) where SQLite's LIKE folds ASCII only, so it names a superset, never fewer jobs."""
    needle = text.lower()
    if "\x00" in needle:
        return None
    grams = dict.fromkeys(needle[i : i + 3] for i in range(len(needle) - 2))
    if not grams:
        return None
    return " ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


class LedgerReads:
    engine: Engine

    def has_search_index(self, conn: Connection) -> bool:
        """Whether this SQLite ledger has the trigram index (revision 0008 makes it only where SQLite has FTS5)."""
        known: bool | None = getattr(self, "_search_index", None)
        if known is None:
            found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs_search_state'"
            known = self._search_index = conn.exec_driver_sql(found).first() is not None
        return known

    def planned(self, conn: Connection, query: JobQuery) -> JobQuery:
        """``query`` with its search looked up in the trigram index first, where that is the cheaper way (see
        ``SEARCH_INDEX_SHARE``); PostgreSQL's planner makes that choice itself with ``pg_trgm``'s indexes."""
        if not query.search or conn.dialect.name != "sqlite":
            return query
        fts = search_index_query(query.search)
        if fts is None or not self.has_search_index(conn):
            return query
        newest = conn.execute(select(func.coalesce(func.max(JOBS.c.id), 0))).scalar_one()
        many = max(SEARCH_INDEX_MIN, newest // SEARCH_INDEX_SHARE)
        named = conn.exec_driver_sql(f"SELECT count(*) FROM (SELECT id FROM jobs WHERE id > {_COVERED} LIMIT ?)",
                                     (many + 1,)).scalar_one()  # fmt: skip
        for name in SEARCH_TABLES:
            probe = f"SELECT count(*) FROM (SELECT rowid FROM {name} WHERE {name} MATCH ? LIMIT ?)"
            named += conn.exec_driver_sql(probe, (fts, many + 1)).scalar_one()
        return replace(query, search_indexed=named <= many)

    def get_row(self, job_id: int) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()
        if row is None:
            raise NotFound(job_id)
        return row

    def get(self, job_id: int) -> dict[str, Any]:
        row = self.get_row(job_id)
        job = job_to_dict(row)
        job["traceback"] = row.traceback
        job["heartbeat_at"] = iso(row.heartbeat_at)
        job["worker_id"] = row.worker_id
        job["history"] = self.history(job_id)
        return job

    def history(self, job_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(EVENTS).where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.seq)).all()
        return [
            {
                "seq": r.seq,
                "type": r.type,
                "at": iso(r.at),
                "status": r.payload["job"]["status"],
                "attempts": r.payload["job"]["attempts"],
                "error": r.payload["job"]["error"] if r.type in _TYPES_WITH_ERROR else None,
            }
            for r in rows
        ]

    def list(
        self,
        query: JobQuery | None = None,
        *,
        sort: str = "id",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
        count: bool = True,
        **filters: Any,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the jobs ``query`` matches, in the order of ``sort`` (ties by id, in the same direction),
        and how many match (``None`` when ``count`` is false: a page of a view that already knows its total).

        The page's ids come first, from a query that an index on the sort key (see ``SORT_KEYS``) answers on
        its own, so a page deep in a million rows skips index entries, not table rows; then their rows."""
        keys = sort_keys(sort, self.engine.dialect.name, descending)
        with self.engine.connect() as conn:
            where = self.planned(conn, query or JobQuery.of(**filters)).where()
            page = select(JOBS.c.id).where(where).order_by(*keys).limit(limit).offset(offset)
            total = conn.execute(select(func.count()).select_from(JOBS).where(where)).scalar_one() if count else None
            ids = list(conn.execute(page).scalars())
            # the rows by their ids, put in the page's order here: an ORDER BY on the outer query let SQLite walk
            # a whole expression index to test each entry against the page
            rows = {r.id: r for r in conn.execute(select(JOBS).where(ids_in(ids)))} if ids else {}
        return [job_to_dict(rows[i]) for i in ids if i in rows], total

    def matching(self, query: JobQuery) -> int:
        with self.engine.connect() as conn:
            where = self.planned(conn, query).where()
            return conn.execute(select(func.count()).select_from(JOBS).where(where)).scalar_one()

    def status_counts(self, query: JobQuery) -> dict[str, int]:
        """How many jobs ``query`` matches in each status (its own status condition left out): the filter's
        counts for each status button."""
        with self.engine.connect() as conn:
            where = self.planned(conn, replace(query, statuses=())).where()
            rows = conn.execute(select(JOBS.c.status, func.count()).where(where).group_by(JOBS.c.status)).all()
        return {s.value: 0 for s in JobStatus} | {status: n for status, n in rows}

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(JOBS.c.id), 0))).scalar_one()

    def waiting(self) -> Sequence[Row[int, str, int, datetime | None, datetime | None]]:
        """Jobs that should have a queue message: what the worker re-enqueues at start-up."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(JOBS.c.id, JOBS.c.status, JOBS.c.priority, JOBS.c.scheduled_time, JOBS.c.next_attempt_at).where(
                    JOBS.c.status.in_([s.value for s in CLAIMABLE])
                )
            ).all()

    def staged_paths(self) -> set[str]:
        """Every staged copy a job still refers to: the spool's sweep keeps these (see ``engine.spool``)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(JOBS.c.staged_path).where(JOBS.c.staged_path.is_not(None))).scalars())

    def events_since(self, seq: int, limit: int = 1000) -> builtins.list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(EVENTS).where(EVENTS.c.seq > seq).order_by(EVENTS.c.seq).limit(limit)).all()
        return [{"seq": r.seq, "job_id": r.job_id, "type": r.type, "at": iso(r.at), **r.payload} for r in rows]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one()

    def counts(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.job_type, JOBS.c.status, func.count()).group_by(JOBS.c.status, JOBS.c.job_type)
            ).all()
        by_status = {s.value: 0 for s in JobStatus}
        by_type: dict[str, dict[str, int]] = {}
        for job_type, status, n in rows:
            by_status[status] = by_status.get(status, 0) + n
            by_type.setdefault(job_type, {})[status] = n
        return by_status, by_type

    def ended_failed_since(self, since: datetime) -> int:
        """Jobs that are failed now and ended at or after ``since``: a failure that a retry later turned into a
        success is not one (the status index narrows the rows; failed jobs are few)."""
        with self.engine.connect() as conn:
            query = (
                select(func.count())
                .select_from(JOBS)
                .where(JOBS.c.status == JobStatus.FAILED.value, JOBS.c.finished_at >= since)
            )
            return int(conn.execute(query).scalar_one())

    def count(self, status: JobStatus) -> int:
        """Jobs in one status (an index lookup; ``counts`` groups the whole table)."""
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(JOBS).where(JOBS.c.status == status.value)
            return conn.execute(query).scalar_one()

    def durations(self, limit: int = 10_000) -> builtins.list[float]:
        """Run times of the most recent successful jobs, in seconds."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(JOBS.c.started_at, JOBS.c.finished_at)
                .where(JOBS.c.status == JobStatus.SUCCEEDED.value, JOBS.c.started_at.is_not(None))
                .order_by(JOBS.c.finished_at.desc())
                .limit(limit)
            ).all()
        return [(f - s).total_seconds() for s, f in rows if f is not None]

    def finished_per_bucket(self, since: datetime, bucket_s: int) -> builtins.list[tuple[str, int, int]]:
        """(kind, bucket, count) of the succeeded and failed events at or after ``since``, ``bucket`` being whole
        ``bucket_s`` periods since the Unix epoch (``bucket_s`` a whole number of minutes, or of hours from an hour).

        The database counts per minute or per hour (a prefix of SQLite's time text, ``date_trunc`` on PostgreSQL), so
        at most a few thousand groups come back however many events a month holds: turning each event into a Python
        datetime took 2.9 s for 300,000 (bench/stats.py)."""
        unit = 3600 if bucket_s % 3600 == 0 else 60
        if self.engine.dialect.name == "sqlite":
            period: ColumnElement[Any] = func.substr(EVENTS.c.at, 1, 13 if unit == 3600 else 16)
        else:
            utc = func.timezone("UTC", EVENTS.c.at)  # truncated in UTC, not in the session's zone
            period = func.date_trunc("hour" if unit == 3600 else "minute", utc)
        with self.engine.connect() as conn:
            first = _first_seq_from(conn, since - EVENT_TIME_SLACK)
            rows = conn.execute(
                select(EVENTS.c.type, period, func.count())
                .where(EVENTS.c.seq >= first, EVENTS.c.type.in_(["succeeded", "failed"]), EVENTS.c.at >= since)
                .group_by(EVENTS.c.type, period)
            ).all()
        found = []
        for kind, at, n in rows:
            when = at if isinstance(at, datetime) else datetime.fromisoformat(at + (":00" if unit == 3600 else ""))
            seconds = int(when.replace(tzinfo=UTC).timestamp())
            found.append((str(kind), seconds // bucket_s, int(n)))
        return found

    def finished_events_since(self, since: datetime) -> builtins.list[tuple[str, datetime]]:
        """The succeeded and failed events at or after ``since``. Events are found by ``seq`` (see
        ``_first_seq_from``), not by an index on their time, which every transition would have to write."""
        with self.engine.connect() as conn:
            first = _first_seq_from(conn, since - EVENT_TIME_SLACK)
            rows = conn.execute(
                select(EVENTS.c.type, EVENTS.c.at)
                .where(EVENTS.c.seq >= first, EVENTS.c.type.in_(["succeeded", "failed"]), EVENTS.c.at >= since)
                .order_by(EVENTS.c.seq)  # PostgreSQL returns rows in heap order, which deletes leave shuffled
            ).all()
        return [(t, at) for t, at in rows]


# How far an event's time may trail an event that committed before it: its time is taken before its transaction
# waits for the write lock, and a writer gives up waiting after 30 s (``lock_wait.MAX_LIMIT_S``).
EVENT_TIME_SLACK = timedelta(seconds=60)


def _first_seq_from(conn: Connection, when: datetime) -> int:
    """A seq below which no event is at or after ``when + EVENT_TIME_SLACK``, found by binary search: seq order
    is time order up to that slack. (A wall clock set back by more than the slack can hide events from a
    time-bounded statistic; the log itself is complete.)"""
    lo, hi = conn.execute(select(func.min(EVENTS.c.seq), func.max(EVENTS.c.seq))).one()
    if lo is None:
        return 0
    hi += 1
    at_or_after = select(EVENTS.c.at).where(EVENTS.c.seq >= bindparam("seq")).order_by(EVENTS.c.seq).limit(1)
    while lo < hi:  # the first seq whose event is at or after ``when`` lies in [lo, hi]
        mid = (lo + hi) // 2
        at = conn.execute(at_or_after, {"seq": mid}).scalar_one_or_none()
        if at is not None and at >= when:
            hi = mid
        else:
            lo = mid + 1
    return lo


class _Contains(ColumnElement[bool]):
    """``text`` LIKE ``pattern``, ignoring case: SQLite's own LIKE already does (for ASCII, as its ``lower`` does),
    and ``lower(text)`` on every row of a million doubled the time a search takes; PostgreSQL has ILIKE."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [(name, InternalTraversal.dp_clauseelement) for name in ("text", "pattern")]

    def __init__(self, text: ColumnElement[Any], pattern: str) -> None:
        self.text = text
        self.pattern = literal(pattern)


@compiles(_Contains)
def _contains_sqlite(element: _Contains, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.text, **kw)} LIKE {compiler.process(element.pattern, **kw)} ESCAPE '\\')"


@compiles(_Contains, "postgresql")
def _contains_postgresql(element: _Contains, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(cast(element.text, Text), **kw)
    return f"({text} ILIKE {compiler.process(element.pattern, **kw)} ESCAPE '\\')"


def _indexed(fts: str | None) -> ColumnElement[bool]:
    """``jobs.id`` among the jobs the trigram index names for ``fts`` (a ``search_index_query``) or newer than it
    covers; SQLite only. Built from SQLAlchemy's own IN, not a construct of ours: SQLite would get
    ``(… IN …) = 1``, which no index serves."""
    lookups: builtins.list[Select[Any]] = [
        select(literal_column("rowid"))
        .select_from(table(name))
        .where(literal_column(name).op("MATCH", is_comparison=True)(literal(fts)))
        for name in SEARCH_TABLES
    ]
    lookups.append(select(JOBS.c.id).where(JOBS.c.id > literal_column(_COVERED)))
    return JOBS.c.id.in_(union(*lookups))


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
