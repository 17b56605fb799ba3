"""Opening the ledger database: connection tuning per dialect and Alembic upgrades on open."""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError

from engine.config import sqlite_file
from engine.storage import json_text
from engine.storage.integrity import check_on_open
from engine.storage.lock_wait import LockWait

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")
log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# A new ledger file's page size (an existing file keeps its own: WAL mode cannot change it). Every page a
# transaction changes goes to the WAL whole at its commit, and a commit of the other process empties this one's
# page cache, so that the next transaction reads each page it needs again. A create changes seven pages, a worker's
# settle some ten, each holding a few ledger rows at most; with 2 KiB pages instead of SQLite's default 4 KiB they
# copy half the bytes, so the create's write lock is held for less time (bench/queue.py).
SQLITE_PAGE_SIZE = 2048
READER_BUSY_TIMEOUT_MS = 5_000
SPIN_FOR_S = 0.0003  # how long a writer waiting for another process's lock only yields the CPU between tries
FAST_POLL_FOR_S = 0.05  # then how long it polls quickly
FAST_POLL_CAP_S = 0.0001

_upgrade_lock = threading.Lock()


def _tune_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for writers so two writers queue instead of deadlocking."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL: it sizes a new file's pages, or nothing
        cur.execute("PRAGMA journal_mode=WAL")
        # Writers wait in _begin_immediate; this covers the rare busy reader (WAL recovery).
        cur.execute(f"PRAGMA busy_timeout={READER_BUSY_TIMEOUT_MS}")
        # FULL: a commit returns only once the WAL is on disk, so that what a user was told survives a power cut
        # (NORMAL survives a process crash only: a cut WAL lost acknowledged jobs, and their ids were handed out
        # again). The ledger's writer connection commits otherwise (see ``tune_writer``).
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints are a Checkpointer's alone (see its module)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("write"):
            _begin_immediate(conn.exec_driver_sql, lambda: sqlite_file(str(conn.engine.url)))
        else:
            conn.exec_driver_sql("BEGIN")


def sqlite_begin_immediate(cursor: sqlite3.Cursor) -> None:
    """Take the write lock on a plain sqlite3 connection (the ledger's writer, the Huey queue).

    SQLite's busy timeout also governs BEGIN, and its handler sleeps whole milliseconds, so these connections keep
    it at 0 (``tune_writer``) and ``_begin_immediate`` retries in microseconds instead.
    """
    _begin_immediate(cursor.execute, lambda: _file_of(cursor.connection))


def _file_of(conn: sqlite3.Connection) -> Path | None:
    """The main database file of a connection (for a message)."""
    rows = conn.execute("PRAGMA database_list").fetchall()
    return next((Path(row[2]) for row in rows if row[1] == "main" and row[2]), None)


def tune_writer(conn: Any) -> None:
    """A writer connection: it takes the write lock through ``sqlite_begin_immediate`` (no busy handler of
    SQLite's) and never checkpoints: SQLite's automatic checkpoint is a passive one, which can lose the WAL-reset
    race (see ``engine.storage.checkpoints``); a ``Checkpointer`` does them all, holding the write lock.

    Its commits do not sync (NORMAL): with FULL, SQLite syncs the WAL while it still holds the write lock, and the
    other process (the worker, or the window and the CLI) waited out every sync, several milliseconds each on a busy
    disk. The ledger syncs the WAL itself after each commit instead (``Checkpointer.sync_log``), once the lock is
    free and before anyone is told of the commit: durable just the same when reported, and a sync of one process
    overlaps the other's next transaction. A job is claimed, and run, only after the commit that created it is on
    disk, since a sync covers every earlier frame of the WAL. (The Huey queue's own commits need no sync: its
    messages are rebuilt from the ledger when the worker starts.)"""
    conn.execute("PRAGMA busy_timeout=0")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA synchronous=NORMAL")


def is_busy(exc: Exception) -> bool:
    """SQLite's "database is locked/busy", raised by sqlite3 or wrapped by SQLAlchemy."""
    if not isinstance(exc, sqlite3.OperationalError | OperationalError):
        return False
    text = str(getattr(exc, "orig", exc)).lower()
    return "locked" in text or "busy" in text


def _begin_immediate(execute: Callable[[str], Any], file: Callable[[], Path | None]) -> None:
    """Take the write lock (see ``while_busy``)."""
    while_busy(lambda: execute("BEGIN IMMEDIATE"), file)


def while_busy(write: Callable[[], T], file: Callable[[], Path | None] = lambda: None) -> T:
    """``write()``, tried again while SQLite says the database is busy; for ``BEGIN IMMEDIATE``, or a single write
    statement run on its own (autocommit), which takes and releases the lock itself.

    SQLite's lock has no queue: a process that waits must poll, and the holder usually wants it again soon. Its own
    busy handler sleeps 1, 2, 5, 10… ms between tries, which cut end-to-end throughput several-fold when the
    GUI/CLI and the worker wrote at once. Most waits are for a transaction far shorter than that, and a sleep is
    coarse (the kernel's timer slack adds to it): a sleeping waiter woke to find the lock released long before and
    often taken again. So the first ``SPIN_FOR_S`` of a wait only yield the CPU between tries; then it polls
    at most ``FAST_POLL_CAP_S`` apart until ``FAST_POLL_FOR_S``, and a longer wait backs off to 5 ms steps, so that
    waiting for a long transaction costs no CPU to speak
    of. A wait of over a second is told on stderr, naming the database ``file()`` and who holds its lock, and one
    past the limit ends in ``LedgerBusy`` (see ``engine.storage.lock_wait``).
    """
    try:
        return write()  # the usual case, with no clock read: the lock was free
    except Exception as exc:
        if not is_busy(exc):
            raise
    start = time.monotonic()
    wait = LockWait(file)
    attempt = 0
    while True:
        attempt += 1
        waited = time.monotonic() - start
        wait.waited(waited)
        if waited < SPIN_FOR_S:
            _yield_cpu()
        else:
            cap = FAST_POLL_CAP_S if waited < FAST_POLL_FOR_S else 0.005
            time.sleep(random.uniform(0.5, 1.0) * min(cap, 0.00005 * 2 ** min(attempt, 8)))
        try:
            return write()
        except Exception as exc:
            if not is_busy(exc):
                raise
            if time.monotonic() - start >= wait.limit_s:
                raise wait.give_up() from exc


def _yield_cpu() -> None:
    """Let another runnable thread have this core (``sched_yield``; Windows has none, and ``Sleep(0)`` does it)."""
    if hasattr(os, "sched_yield"):
        os.sched_yield()
    else:
        time.sleep(0)


def open_engine(url: str) -> Engine:
    """Create the engine and bring its schema to the newest migration."""
    if url.startswith("sqlite"):
        db_file = sqlite_file(url)
        if db_file is not None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            check_on_open(db_file)  # before anything reads or migrates it: a damaged file stops us with one line
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=json_text.dumps
        )
        _tune_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=json_text.dumps)
    upgrade(engine)
    return engine


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration, taking the write lock only if the schema's version says so: a
    command that reads (``list``, ``show``) must not wait behind a writer of another process, nor fail with it."""
    current = _schema_version(engine)
    if current == _newest_on_disk() or current == _newest():  # the first asks no Alembic, a third of a start
        return
    from alembic import command

    with _upgrade_lock, engine.execution_options(write=True).begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    # one line for the whole upgrade (Alembic's own, a dozen a new ledger, are kept off the console: engine.logs)
    before = f"it was at {', '.join(sorted(current))}" if current else "a new ledger"
    log.info("the ledger's schema is now at %s (%s)", ", ".join(sorted(_newest())), before)


def _schema_version(engine: Engine) -> set[str]:
    """The revisions the database is at, read without the write lock (none for a new database)."""
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no such table: a new database (anything else fails again, and is reported, on upgrade)
        return set()


@functools.cache
def _newest() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


_REVISION = re.compile(r"""^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:["'](\w+)["']|None)""", re.MULTILINE)


@functools.cache
def _newest_on_disk() -> set[str]:
    """The head revisions, read from the migration files' ``revision``/``down_revision`` lines without importing
    Alembic. Only a shortcut: when it disagrees with the database, ``_newest`` asks Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for kind, name in _REVISION.findall(script.read_text(encoding="utf-8")):
            if name:
                (revisions if kind == "revision" else parents).add(name)
    return revisions - parents


def table_names(engine: Engine) -> list[str]:
    return inspect(engine).get_table_names()
