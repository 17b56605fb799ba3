"""Damage in a SQLite ledger: found at start-up (``PRAGMA quick_check``), told in one line, and what can be read saved
into a new file (``jobdeck db check``, ``jobdeck db recover``).

A power cut on a disk that lies about its writes, a failing disk, or a copy taken while the worker wrote can leave
pages that SQLite cannot read. A ledger that opens but fails somewhere in the middle would fail some commands and not
others, and a worker would keep running on it; so the check runs before anything else uses the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.config import sqlite_file
from engine.errors import JobdeckError, ValidationError

# SQLite's primary result codes for a damaged file and for a file that is not a database at all.
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26

# On open, a ledger up to this size (file and WAL) is checked page by page. quick_check reads every page (100-160
# MB/s here: 1.4-2.4 s for 100,000 jobs with their events), so a command checks a larger ledger only as far as its
# header and schema, and stays quick; the worker checks every page when it starts (``check_url``), and SQLite
# reports a damaged page whenever a command reads one.
FULL_CHECK_MAX_BYTES = 1024 * 1024
TABLES = (("jobs", "id"), ("job_events", "seq"))  # the ledger's tables and their integer keys, in copy order
SCHEDULE_TABLES = (("schedules", "id"),)  # copied by a recovery too (not counted in its report)

_checked: set[str] = set()  # files this process has checked in full (once per start)
_checked_lock = threading.Lock()


class LedgerDamaged(JobdeckError):
    """The ledger file cannot be read as a SQLite database, in part or at all."""

    def __init__(self, path: Path, detail: str, *, not_a_database: bool = False) -> None:
        self.path = path
        self.detail = detail
        self.not_a_database = not_a_database
        if not_a_database:
            text = (
                f"{path} is not a SQLite database, so it cannot be the ledger (SQLite: {detail}); if it was the "
                f"ledger, save what can be read with `jobdeck db recover NEWFILE`, else move it away"
            )
        else:
            text = (
                f"the ledger {path} is damaged ({detail}); stop the worker, save what can be read with "
                f"`jobdeck db recover NEWFILE`, then put NEWFILE in its place (README: A damaged ledger)"
            )
        super().__init__(text)


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` saved."""

    jobs: int
    events: int
    method: str  # "sqlite3 .recover" or "row salvage"
    unplaced: int  # rows SQLite's recovery found but could not give a table (left in its lost_and_found)


def damage(exc: BaseException) -> str | None:
    """SQLite's own words if ``exc`` (or what it wraps, e.g. SQLAlchemy's ``orig``) says the file is damaged or
    is not a database; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.DatabaseError) and _code(current) in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return str(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return None


def _code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # a driver without error codes: SQLite's fixed messages
        text = str(exc).lower()
        return SQLITE_NOTADB if "not a database" in text else SQLITE_CORRUPT if "malformed" in text else 0
    return int(code) & 0xFF


def check_url(url: str) -> None:
    """Every page of a SQLite ledger, once per process: what the worker does when it starts."""
    path = sqlite_file(url)
    if path is not None and path.exists() and os.path.realpath(path) not in _checked:
        check(path)


def check_on_open(path: Path) -> None:
    """The check a process makes when it opens the ledger: in full once per process for a small file, else the
    header and schema (see ``FULL_CHECK_MAX_BYTES``). Raises ``LedgerDamaged``."""
    if not path.exists() or os.path.realpath(path) in _checked:
        return
    check(path, full=_size(path) <= FULL_CHECK_MAX_BYTES)


def check(path: Path, *, full: bool = True) -> None:
    """``PRAGMA quick_check`` (``full``), or a read of the header and schema only; raises ``LedgerDamaged``."""
    with _reading(path) as conn:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if not full:
            return
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
        if problems != ["ok"]:
            more = f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
            raise LedgerDamaged(path, f"quick_check: {problems[0]}{more}")
    with _checked_lock:
        _checked.add(os.path.realpath(path))


def counts(path: Path) -> tuple[int, int]:
    """Jobs and events in a SQLite ledger (every row is read: for ``db check``, not for every command)."""
    with _reading(path) as conn:
        return _count(conn, "jobs"), _count(conn, "job_events")


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (closing the last connection to a damaged file must not checkpoint into it); SQLite's
    word for damage becomes ``LedgerDamaged``."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5, isolation_level=None)
    except sqlite3.Error as exc:
        raise _damaged(path, exc) from None
    try:
        yield conn
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, exc) from None
    finally:
        conn.close()


def server_counts(url: str) -> tuple[int, int]:
    """Jobs and events in a PostgreSQL ledger: the server keeps its own pages whole, so reading is the check."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            jobs, events = (
                int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()) for table, _ in TABLES
            )
    finally:
        engine.dispose()
    return jobs, events


def _count(conn: sqlite3.Connection, table: str) -> int:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
        return 0  # a ledger no command has written yet
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _damaged(path: Path, exc: sqlite3.Error) -> LedgerDamaged | sqlite3.Error:
    detail = damage(exc)
    if detail is None:
        return exc  # not damage (a locked or unreadable file): the caller's error handling tells that
    return LedgerDamaged(path, detail, not_a_database=_code(exc) == SQLITE_NOTADB)


def _size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# ---------------------------------------------------------------------------------------------- recovery
def recover(source: Path, out: Path, *, tool: str | None = None) -> Recovered:
    """Save every row that can be read from the ledger at ``source`` into a new ledger at ``out``; ``source`` is
    only read (a copy is worked on).

    The rows come from SQLite's own recovery (``sqlite3 DB .recover``, which reads every page it can, the damaged
    tables' included) when the ``sqlite3`` tool is installed (``tool``: its path, found on PATH if None), else from
    reading each table in key order and stepping over the keys whose pages fail. They go into a ledger made by
    Jobdeck's migrations, so that the new file has the newest schema whatever the damage did to the old one's, and
    its next job id is above every id the old file still mentions.
    """
    if out.exists():
        raise ValidationError("OUTFILE", f"{out} already exists; give the name of a new file")
    if not source.exists():
        raise JobdeckError(f"no ledger at {source}: nothing to recover")
    tool = tool if tool is not None else shutil.which("sqlite3")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".jobdeck-recover-", dir=out.parent) as tmp:
        copy = Path(tmp) / "copy.db"
        _copy_still(source, copy)
        _readable_at_all(source, copy)
        rows_from, method = copy, "row salvage"
        if tool and _sqlite_recover(tool, copy, Path(tmp) / "recovered.db"):
            rows_from, method = Path(tmp) / "recovered.db", "sqlite3 .recover"
        staging = Path(tmp) / "new.db"
        _new_ledger(staging)
        unplaced = _copy_rows(rows_from, copy, staging)
        check(staging)
        jobs, events = counts(staging)
        os.replace(staging, out)
    return Recovered(jobs, events, method, unplaced)


def _copy_still(source: Path, copy: Path) -> None:
    """Copy the ledger and its WAL while holding a read transaction on it where SQLite can: no checkpoint rewrites
    the file meanwhile (a running worker's commits only add to the WAL, and a commit cut off at the end of the copy
    is ignored as a power cut's would be)."""
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=5, isolation_level=None)
    try:
        with contextlib.suppress(sqlite3.Error):  # a file too damaged to read is copied as it is
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
        shutil.copyfile(source, copy)
        wal = source.with_name(source.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    finally:
        reader.close()


def _readable_at_all(source: Path, copy: Path) -> None:
    """Refuse a file whose header is not SQLite's: there are no pages to read (and it may be someone's file)."""
    try:
        check(copy, full=False)
    except LedgerDamaged as exc:
        if exc.not_a_database:
            raise JobdeckError(
                f"nothing can be read from {source}: it is not a SQLite database (SQLite: {exc.detail}); "
                "move it away, and Jobdeck starts a new ledger there"
            ) from None


def _sqlite_recover(tool: str, damaged: Path, into: Path) -> bool:
    """``sqlite3 damaged .recover | sqlite3 into``; False if the tool could not do it (too old, or it failed)."""
    reader = subprocess.Popen(
        [tool, str(damaged), ".recover"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    assert reader.stdout is not None
    writer = subprocess.run(
        [tool, str(into)], stdin=reader.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    reader.stdout.close()
    return reader.wait() == 0 and writer.returncode == 0 and into.exists()


def _new_ledger(path: Path) -> None:
    from engine.storage.database import open_engine  # the migrations: imported only by this rare command

    open_engine(f"sqlite:///{path}").dispose()


def _copy_rows(rows_from: Path, original: Path, into: Path) -> int:
    """Every readable row of each ledger table, into the same columns of ``into``; then the id counter. Returns how
    many rows SQLite's recovery left unplaced."""
    src = sqlite3.connect(rows_from, isolation_level=None)
    dst = sqlite3.connect(into, isolation_level=None)
    try:
        dst.execute("BEGIN IMMEDIATE")
        for table, key in (*TABLES, *SCHEDULE_TABLES):
            columns = _shared_columns(src, dst, table)
            if columns:
                names = ", ".join(columns)
                insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
                dst.executemany(insert, _salvage(src, table, key, names))
        _keep_ids_unique(dst, _old_sequence(original, rows_from))
        dst.execute("COMMIT")
        return _count_if_readable(src, "lost_and_found")
    finally:
        src.close()
        dst.close()


def _shared_columns(src: sqlite3.Connection, dst: sqlite3.Connection, table: str) -> list[str]:
    try:
        theirs = {row[1] for row in src.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError:
        return []  # the schema itself is unreadable: only SQLite's .recover could have found these rows
    return [row[1] for row in dst.execute(f"PRAGMA table_info({table})") if row[1] in theirs]


def _salvage(conn: sqlite3.Connection, table: str, key: str, names: str) -> Iterator[tuple[object, ...]]:
    """The table's readable rows in key order: where a page fails, skip to the next key that can be read.

    A scan resumes with ``key >= start``, never ``key > last``: SQLite seeks to the bound first, and the page holding
    the last key read may be the one that failed. The driver reads a row ahead, so a scan that fails at a page's
    first row also loses the row before it: a scan that failed before its first row reads that row on its own."""
    scan = f"SELECT {key}, {names} FROM {table} WHERE {key} >= ? ORDER BY {key}"
    start, last = -(2**63), None
    while True:
        progressed = False
        try:
            for row in conn.execute(scan, (start,)):
                last, progressed = row[0], True
                yield row[1:]
            return
        except sqlite3.DatabaseError:
            pass
        if not progressed and last != start:
            last = start  # read, or given up on, but never tried again
            try:
                row = conn.execute(f"{scan} LIMIT 1", (start,)).fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is not None and row[0] == start:
                yield row[1:]
        following = _next_readable(conn, table, key, last)
        if following is None:
            return
        start = following


def _next_readable(conn: sqlite3.Connection, table: str, key: str, last: int | None) -> int | None:
    """The first key after ``last`` from which the table reads again: steps that double until a read works, then
    halving back to the lowest start that reads. None if no later key can be read."""

    def first_from(start: int) -> int | None:
        row = conn.execute(f"SELECT {key} FROM {table} WHERE {key} >= ? ORDER BY {key} LIMIT 1", (start,)).fetchone()
        return None if row is None else int(row[0])

    base = last if last is not None else -(2**63)
    failed, step = base, 1
    while True:
        probe = base + step
        if probe >= 2**63 - 1:
            return None
        try:
            found = first_from(probe)
            break
        except sqlite3.DatabaseError:
            failed, step = probe, step * 2
    low, high = failed + 1, probe  # a read from ``high`` works; find the lowest start that does
    while found is not None and low < high:
        middle = (low + high) // 2
        try:
            found = first_from(middle)
            high = middle
        except sqlite3.DatabaseError:
            low = middle + 1
    return found


def _old_sequence(*files: Path) -> int:
    """The highest job id the damaged ledger's counter recorded, if any copy of it can still say."""
    best = 0
    for path in files:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'jobs'").fetchone()
            best = max(best, int(row[0]) if row else 0)
        except sqlite3.DatabaseError:
            pass
        finally:
            conn.close()
    return best


def _keep_ids_unique(conn: sqlite3.Connection, old_sequence: int) -> None:
    """Start the new ledger's id counter above every id the old one used (as revision 0004 does on upgrade)."""
    highest = max(
        old_sequence,
        conn.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()[0],
        conn.execute("SELECT coalesce(max(job_id), 0) FROM job_events").fetchone()[0],
    )
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'jobs'")
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('jobs', ?)", (highest,))


def _count_if_readable(conn: sqlite3.Connection, table: str) -> int:
    try:
        return _count(conn, table)
    except sqlite3.DatabaseError:
        return 0
