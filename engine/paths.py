"""Where Jobdeck keeps its files: the data folder, every path in it, and keeping them private.

Apart from the settings (``engine.config``): every command needs the paths first, and most need nothing of the
settings model (pydantic) or of the ledger (SQLAlchemy), so finding the data folder and a running worker must not
import either.
"""

from __future__ import annotations

import os
import stat
from functools import cached_property
from pathlib import Path

import platformdirs

from engine.modes import PRIVATE_DIR, PRIVATE_FILE

APP_NAME = "jobdeck"


def home() -> Path:
    """The data folder; tests and benchmarks point JOBDECK_HOME at a temporary one."""
    path = Path(os.environ.get("JOBDECK_HOME") or platformdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def make_private(paths: Paths) -> None:
    """Give the data folder, everything in it and a SQLite ledger kept elsewhere owner-only modes.

    New files are born private under the process umask (``PRIVATE_UMASK``, set by main.py); this fixes what an older
    version or another umask left readable by other local users: the ledger holds recipients, message bodies and
    file names, ``runtime/worker.json`` the worker's token. Links are never followed (a link planted in the folder
    must not make Jobdeck change the mode of its target), and only modes that are wrong are written.

    Every command runs this, so it reads the whole tree only when the data folder itself was not yet private (the
    first start after an older version); otherwise the folder's own entries and the files in its folders: a file
    copied in lands there, while what lies deeper (each job's spool folder and staged copy) only Jobdeck writes,
    under its umask. A full walk over many staged copies would cost every command time it cannot spare.
    """
    if os.name != "posix":
        return  # Windows keeps the data folder in the user's profile, which ACLs already keep private
    deep = not _restrict(paths.root, PRIVATE_DIR)
    for folder, dirs, files in os.walk(paths.root):
        shallow_below = not deep and folder != str(paths.root)
        for name in () if shallow_below else dirs:
            _restrict(Path(folder) / name, PRIVATE_DIR)
        for name in files:
            _restrict(Path(folder) / name, PRIVATE_FILE)
        if shallow_below:
            dirs.clear()
    ledger = sqlite_file(paths.database_url())
    if ledger is not None and paths.root not in ledger.parents:
        for path in (ledger, ledger.with_name(ledger.name + "-wal"), ledger.with_name(ledger.name + "-shm")):
            _restrict(path, PRIVATE_FILE)


def _restrict(path: Path, mode: int) -> bool:
    """Take away what ``mode`` does not allow; whether ``path`` was already that private (or is not ours to change)."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) & ~mode == 0 or st.st_uid != os.getuid():
            return True
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
    except OSError:
        return True  # removed meanwhile (a finished job's staged copy, a rotated log), or a read-only disk: not fatal
    return False


class Paths:
    """Every file Jobdeck keeps at run time, in one place (see DESIGN.md, 'Files at run time')."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else home()
        self._made: dict[str, Path] = {}

    def _dir(self, name: str) -> Path:
        """Made on first use in this process (code that writes inside makes its own subfolders with parents)."""
        path = self._made.get(name)
        if path is None:
            path = self.root / name
            path.mkdir(PRIVATE_DIR, parents=True, exist_ok=True)
            self._made[name] = path
        return path

    @cached_property
    def database(self) -> Path:
        return self.root / "jobdeck.db"

    @property
    def queue(self) -> Path:
        """The Huey queue's SQLite file: the ledger's own file when the ledger is SQLite, so that a job and its
        message commit in one transaction (see ``Operations``); ``queue.db`` beside it with PostgreSQL."""
        return sqlite_file(self.database_url()) or self.queue_alone

    @property
    def queue_alone(self) -> Path:
        """The queue's file of its own: with PostgreSQL, and beside a SQLite ledger in versions before the queue
        moved into it (the worker removes that one)."""
        return self.root / "queue.db"

    @cached_property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def spool(self) -> Path:
        return self._dir("spool")

    @property
    def logs(self) -> Path:
        return self._dir("logs")

    @property
    def runtime(self) -> Path:
        return self._dir("runtime")

    @property
    def worker_info(self) -> Path:
        return self.runtime / "worker.json"

    @property
    def worker_lock(self) -> Path:
        return self.runtime / "worker.lock"

    @property
    def temp(self) -> Path:
        return self._dir("tmp")

    def database_url(self) -> str:
        return os.environ.get("JOBDECK_DATABASE_URL") or f"sqlite:///{self.database}"


_PLAIN_SQLITE = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for an in-memory database or another dialect."""
    if (
        url.startswith(_PLAIN_SQLITE)
        and not any(c in url for c in "?#%@")
        and url[len(_PLAIN_SQLITE) :]
        not in (
            "",
            ":memory:",
        )
    ):
        return Path(url[len(_PLAIN_SQLITE) :])  # the default ledger's URL, read without SQLAlchemy's (slow) import
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None
