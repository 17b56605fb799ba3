"""Failures of the environment (disk, files, database, network) told in one line: what failed, where, what to do.

Every front end (the CLI, the worker's console, the window) shows these instead of a traceback: a user can act on
"the disk holding /x/jobdeck.db is full", not on forty lines of SQLAlchemy frames. A bug in Jobdeck itself is not
described here (``describe`` returns None) and keeps its traceback, which is what a bug report needs.
"""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from engine.config import Paths, sqlite_file
from engine.storage.integrity import LedgerDamaged

# SQLite's primary result codes (the low byte of an extended code such as SQLITE_IOERR_WRITE).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26
FULL_BELOW_BYTES = 64 * 1024  # less free space than this beside the ledger, and a failed write is the full disk's


def describe(exc: BaseException, paths: Paths | None = None) -> str | None:
    """One line for ``exc`` if the environment caused it, else None. ``paths`` names the ledger in the line."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        if isinstance(exc.orig, sqlite3.Error):
            return _sqlite(exc.orig, paths)
        if isinstance(exc, OperationalError | InterfaceError):  # the server went away or refused us
            return (
                f"cannot use {_ledger_name(paths)} ({first_line(exc.orig)}); check that the database server is "
                "running and reachable, and that JOBDECK_DATABASE_URL names it"
            )
        return None
    if isinstance(exc, sqlite3.Error):
        return _sqlite(exc, paths)
    if isinstance(exc, OSError):
        return _os(exc, paths)
    return None


def report(exc: Exception, paths: Paths | None) -> int:
    """For a front end's last ``except``: ``exc``'s one line on stderr and exit status 1, or ``exc`` raised again
    when it is a bug (its traceback is wanted)."""
    line = describe(exc, paths)
    if line is None:
        raise exc
    print(f"jobdeck: {line}", file=sys.stderr)
    return 1


def first_line(exc: BaseException) -> str:
    """An exception's own text without the lines drivers append (SQL, background links)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ledger_name(paths: Paths | None) -> str:
    if paths is None:
        return "the ledger"
    url = paths.database_url()
    db_file = sqlite_file(url)
    if db_file is not None:
        return f"the ledger {db_file}"
    return f"the ledger at {make_url(url).render_as_string(hide_password=True)}"


def _sqlite(orig: sqlite3.Error, paths: Paths | None) -> str | None:
    ledger = _ledger_name(paths)
    db_file = sqlite_file(paths.database_url()) if paths is not None else None
    said = first_line(orig)
    code = (getattr(orig, "sqlite_errorcode", None) or 0) & 0xFF
    if code in (_SQLITE_IOERR, _SQLITE_CANTOPEN) and _no_room_beside(paths):
        code = _SQLITE_FULL  # e.g. SQLITE_IOERR_SHMSIZE: the -shm file beside it could not be given its first page
    if code == _SQLITE_FULL:
        return f"the disk holding {ledger} is full (SQLite: {said}); free some space there and try again"
    if code in (_SQLITE_NOTADB, _SQLITE_CORRUPT) and db_file is not None:  # damage found after the open's check
        return str(LedgerDamaged(db_file, said, not_a_database=code == _SQLITE_NOTADB))
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return (
            f"{ledger} stayed locked by another process (SQLite: {said}); "
            "try again once the other command or worker has finished its write"
        )
    if code == _SQLITE_CANTOPEN:
        return f"cannot open {ledger} (SQLite: {said}); check that its folder exists and that you may write there"
    if code in (_SQLITE_READONLY, _SQLITE_PERM):
        return f"cannot write {ledger} (SQLite: {said}); check the permissions of the file and of its folder"
    if code == _SQLITE_IOERR:
        return f"a disk error on {ledger} (SQLite: {said}); check the disk and its free space, then try again"
    if isinstance(orig, sqlite3.OperationalError):
        return f"{ledger} failed (SQLite: {said}); check the file and the disk, then try again"
    return None  # a constraint or a misused API: a bug, not the environment


def _no_room_beside(paths: Paths | None) -> bool:
    """Whether the SQLite ledger's disk is (all but) full: SQLite reports some writes that found no room (the
    ``-shm`` file's first page, say) only as a generic I/O error."""
    db_file = sqlite_file(paths.database_url()) if paths is not None else None
    if db_file is None:
        return False
    try:
        return shutil.disk_usage(db_file.parent).free < FULL_BELOW_BYTES
    except OSError:
        return False


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _os(exc: OSError, paths: Paths | None) -> str:
    if exc.filename is not None:
        subject = f"{exc.strerror or first_line(exc)}: {exc.filename}"
        subject += f" → {exc.filename2}" if exc.filename2 is not None else ""
    else:  # a write to an open file, a socket's bind: the text is all there is
        subject = re.sub(r"^\[Errno \d+\] ", "", first_line(exc))
        if exc.errno in _DISK_ERRNOS and paths is not None:
            subject += f" (writing in {paths.root})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{subject}; free some space on that disk and try again"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{subject}; check the permissions of that file and of every folder above it"
    if exc.errno == errno.EROFS:
        return f"{subject}; the disk is mounted read-only, choose a writable place (JOBDECK_HOME)"
    if exc.errno == errno.EADDRINUSE:
        return f"{subject}; another program uses that port: choose another --port, or 0 for any free one"
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return f"{subject}; close some programs or raise the open-file limit (ulimit -n), then try again"
    if exc.errno == errno.ENOENT:
        return f"{subject}; check the path"
    return f"{subject}; check it and try again"
