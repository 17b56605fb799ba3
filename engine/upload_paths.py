"""Which local files an upload may read, and opening exactly the file that was checked.

A dropped folder is hostile input: it may hold links to ``/proc/self/environ`` (which, opened by the worker, is the
worker's own environment with its secrets), to ``/etc/shadow``-like files, to Jobdeck's ledger, or FIFOs that block
whoever opens them. So: links are never followed out of the folder that was named, linked folders are listed as
skipped, a directly named link is resolved in the process that submits it, and the file is opened once, without
following a link in its place and without blocking, then judged by ``fstat`` of that descriptor.

Jobdeck's own files are never a source. SQLite's POSIX locks belong to the process: one ``open()`` + ``close()`` of
the ledger by worker code drops every lock the worker holds on it, and the next CLI command then checkpoints and
deletes the WAL under the running worker. The guard therefore refuses such a path before it is opened, and a
descriptor that turns out (after a race) to be one of those files is kept open rather than closed.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from engine.config import Paths, sqlite_file
from engine.errors import ValidationError

MAX_KEY_BYTES = 1024
COPY_BLOCK = 1024 * 1024
# Kernel file systems whose files are made up as they are read (a size of 0 that reads as data, the reader's own
# environment or memory): never an upload's content, even though many of them stat as regular files.
PSEUDO_FILE_SYSTEMS = frozenset(
    {
        "proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs", "cgroup", "cgroup2", "pstore",
        "bpf", "configfs", "efivarfs", "fusectl", "mqueue", "binfmt_misc", "selinuxfs", "rpc_pipefs", "nsfs",
        "autofs", "hugetlbfs", "fuse.lxcfs",
    }
)  # fmt: skip
# The same trees by name, for systems without /proc/self/mountinfo (macOS has a devfs at /dev).
SYSTEM_TREES = ("/proc", "/sys", "/dev")
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in must not block the opening thread
    | getattr(os, "O_NOFOLLOW", 0)  # the stored path is already resolved: a link in its place is refused
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISLNK, "a link"),
)
REUSE_S = 1.0  # how long a listing of the data folder or of the mount table is reused
_recent_guards: dict[Path, tuple[float, DataGuard]] = {}
_pseudo: tuple[float, frozenset[int]] | None = None
# Descriptors found (after a race) to be one of Jobdeck's own files: closing one would drop the process's SQLite
# locks on it, so they stay open for the life of the process.
_kept_open: list[int] = []

NOT_UPLOADED = ": not uploaded"
DATA_FOLDER = "in Jobdeck's data folder" + NOT_UPLOADED
LINK_OUT = "link to a file outside the folder" + NOT_UPLOADED
LINKED_FOLDER = "link to a folder" + NOT_UPLOADED + " (drop that folder itself to upload it)"
BROKEN_LINK = "broken link" + NOT_UPLOADED
SYSTEM_FILE = "a /proc, /sys or device file, made up as it is read" + NOT_UPLOADED


class Refused(Exception):
    """A source the upload must not read; the message says why, for a ValidationError or a permanent job error."""


# ------------------------------------------------------------------ Jobdeck's own files
class DataGuard:
    """Jobdeck's data folder and a SQLite ledger kept outside it: by path, and by inode (a hard link elsewhere)."""

    def __init__(self, paths: Paths) -> None:
        self.root = os.path.realpath(paths.root)
        ledger = sqlite_file(paths.database_url())
        self.ledger_files: tuple[str, ...] = ()
        if ledger is not None:
            real = os.path.realpath(ledger)
            self.ledger_files = tuple(real + suffix for suffix in ("", "-wal", "-shm", "-journal"))
        self._inodes: set[tuple[int, int]] | None = None
        self._root_id: tuple[int, int] | None = None

    @classmethod
    def beside(cls, folder: Path) -> DataGuard:
        """The guard for the data folder that holds ``folder`` (``Paths.spool`` or ``Paths.temp``).

        Kept for a second: a batch of a thousand files would otherwise list the data folder twice per file. The
        ledger's inodes do not change meanwhile (a new hard link shares one already listed)."""
        now = time.monotonic()
        cached = _recent_guards.get(folder)
        if cached is not None and now - cached[0] < REUSE_S:
            return cached[1]
        guard = cls(Paths(folder.parent))
        guard.inodes()
        _recent_guards[folder] = (now, guard)
        return guard

    def holds(self, real: str) -> bool:
        """Whether a resolved path is the data folder, inside it, or one of the ledger's files."""
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep) or real in self.ledger_files

    def owns(self, st: os.stat_result) -> bool:
        """Whether a file is one of Jobdeck's files under another name (a hard link), or the data folder itself."""
        ident = (st.st_dev, st.st_ino)
        return ident in self.inodes() or ident == self.root_id()

    def root_id(self) -> tuple[int, int] | None:
        if self._root_id is None:
            try:
                st = os.stat(self.root)
            except OSError:
                return None
            self._root_id = (st.st_dev, st.st_ino)
        return self._root_id

    def inodes(self) -> set[tuple[int, int]]:
        """Every file in the data folder (the spool's snapshots aside: they hold no locks) and the ledger's files."""
        if self._inodes is None:
            found: set[tuple[int, int]] = set()
            candidates = list(self.ledger_files)
            for folder, dirs, files in os.walk(self.root):
                if folder == self.root and "spool" in dirs:
                    dirs.remove("spool")
                candidates += [os.path.join(folder, name) for name in files]
            for name in candidates:
                try:
                    st = os.stat(name, follow_symlinks=False)
                except OSError:
                    continue
                found.add((st.st_dev, st.st_ino))
            self._inodes = found
        return self._inodes


def pseudo_devices() -> frozenset[int]:
    """Device numbers of the mounted kernel file systems (Linux); empty where the mount table cannot be read.
    Read again after REUSE_S: kernel file systems are mounted at boot, not per file."""
    global _pseudo
    now = time.monotonic()
    if _pseudo is None or now - _pseudo[0] >= REUSE_S:
        _pseudo = (now, _read_pseudo_devices())
    return _pseudo[1]


def _read_pseudo_devices() -> frozenset[int]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return frozenset()
    devices = set()
    for line in lines:
        fields = line.split()
        try:
            fs_type = fields[fields.index("-") + 1]
            major, minor = fields[2].split(":")
        except (ValueError, IndexError):
            continue
        if fs_type in PSEUDO_FILE_SYSTEMS or fs_type.startswith("cgroup"):
            devices.add(os.makedev(int(major), int(minor)))
    return frozenset(devices)


def _system_path(real: str) -> bool:
    return any(real == top or real.startswith(top + "/") for top in SYSTEM_TREES) if os.name == "posix" else False


def kind_of(st: os.stat_result) -> str:
    return next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")


def refusal(real: str, st: os.stat_result, guard: DataGuard | None, pseudo: frozenset[int]) -> str | None:
    """Why the file at ``real`` (its stat, or better its descriptor's ``fstat``) is never an upload's content;
    ``guard`` is ``None`` once the caller has judged the path against the data folder itself."""
    if guard is not None and (guard.holds(real) or guard.owns(st)):
        return DATA_FOLDER
    if st.st_dev in pseudo or _system_path(real):
        return SYSTEM_FILE
    if not stat.S_ISREG(st.st_mode):
        return f"not a regular file ({kind_of(st)})" + NOT_UPLOADED
    return None


def limit_problem(st: os.stat_result, limit: int) -> str | None:
    if st.st_size > limit:
        return f"{st.st_size:,} bytes, over the upload limit of {limit:,} bytes (max_upload_bytes)"
    return None


# ------------------------------------------------------------------ expanding what was dropped or named
@dataclass(frozen=True)
class Entry:
    """One file a drop or ``jobdeck upload`` would upload, or one it will not (``problem`` says why)."""

    path: str  # the resolved file the worker will open; for a skipped entry, where it was found
    key: str  # relative key (the named folder's name + the path inside it), before the prefix
    size: int | None
    problem: str | None = None  # flagged, never silently left out
    in_folder: bool = False  # found inside a named folder (else named directly: its problem is the user's error)


def expand(named: Sequence[str], limit: int, guard: DataGuard) -> list[Entry]:
    """Files named directly (a named link is resolved here, in the submitting process) and the files in named
    folders, recursively; links inside a folder are followed only to files in that same folder. Does file-system
    I/O: a GUI calls it off its event loop."""
    pseudo = pseudo_devices()
    entries: list[Entry] = []
    for raw in named:
        given = os.path.abspath(os.path.expanduser(raw))
        name = os.path.basename(given.rstrip(os.sep)) or given
        real = os.path.realpath(given)
        try:
            st = os.stat(real)
        except OSError as exc:
            problem = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot read: {exc.strerror}"
            entries.append(Entry(given, name, None, problem))
            continue
        if stat.S_ISDIR(st.st_mode) and not (guard.holds(real) or guard.owns(st)):
            entries += _walk(real, name, limit, guard, pseudo)
        else:
            entries.append(_file(real, name, st, limit, guard, pseudo))
    return entries


def _walk(root: str, base: str, limit: int, guard: DataGuard, pseudo: frozenset[int]) -> list[Entry]:
    """Depth first, by name; an explicit stack, so that no folder depth can exhaust the recursion limit."""
    entries: list[Entry] = []
    stack = [(root, base)]
    while stack:
        folder, key = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problem = f"folder unreadable ({exc.strerror or exc})" + NOT_UPLOADED
            entries.append(Entry(folder, key, None, problem, in_folder=True))
            continue
        subfolders = []
        for child in children:
            child_key = f"{key}/{child.name}"
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                entries.append(Entry(child.path, child_key, None, f"cannot read: {exc.strerror or exc}", True))
                continue
            if stat.S_ISLNK(st.st_mode):
                entries.append(replace(_link(child.path, child_key, root, limit, guard, pseudo), in_folder=True))
            elif stat.S_ISDIR(st.st_mode):
                if guard.holds(child.path) or guard.owns(st):
                    entries.append(Entry(child.path, child_key, None, DATA_FOLDER, True))
                else:
                    subfolders.append((child.path, child_key))
            else:
                entries.append(replace(_file(child.path, child_key, st, limit, guard, pseudo), in_folder=True))
        stack += reversed(subfolders)
    return entries


def _link(path: str, key: str, root: str, limit: int, guard: DataGuard, pseudo: frozenset[int]) -> Entry:
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except OSError:
        return Entry(path, key, None, BROKEN_LINK)
    if stat.S_ISDIR(st.st_mode):
        return Entry(path, key, None, LINKED_FOLDER)
    if not target.startswith(root.rstrip(os.sep) + os.sep):
        return Entry(path, key, None, LINK_OUT)
    return _file(target, key, st, limit, guard, pseudo)


def _file(real: str, key: str, st: os.stat_result, limit: int, guard: DataGuard, pseudo: frozenset[int]) -> Entry:
    problem = refusal(real, st, guard, pseudo)
    if problem is None and not os.access(real, os.R_OK):
        problem = "unreadable (permission denied)"
    if problem is None:
        try:
            check_key("key", key)
        except ValidationError as exc:
            problem = f"its name cannot be an object key ({exc.message})" + NOT_UPLOADED
    size = st.st_size if stat.S_ISREG(st.st_mode) else None
    return Entry(real, key, size, problem or limit_problem(st, limit))


def check_named(text: str, limit: int, guard: DataGuard) -> tuple[Path, os.stat_result]:
    """The submission-time checks of one named file, each a ValidationError on ``path``; nothing is opened.

    Returns the resolved path (what the worker opens) and its stat."""
    given = Path(text).expanduser()
    real = os.path.realpath(given)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ValidationError("path", f"{given} does not exist") from None
    except OSError as exc:
        raise ValidationError("path", f"{given} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode) and not guard.holds(real):
        raise ValidationError("path", f"{given} is a directory; give a file (jobdeck upload expands folders)")
    problem = refusal(real, st, guard, pseudo_devices())
    if problem == DATA_FOLDER:
        raise ValidationError(
            "path", f"{given} is in Jobdeck's data folder ({guard.root}); its files (the ledger) are never uploaded"
        )
    if problem is not None:
        raise ValidationError("path", f"{given} is {problem.removesuffix(NOT_UPLOADED)}; give a regular file")
    if not os.access(real, os.R_OK):
        raise ValidationError("path", f"{given} is not readable by this user")
    too_big = limit_problem(st, limit)
    if too_big:
        raise ValidationError("path", f"{given} is {too_big}")
    return Path(real), st


# ------------------------------------------------------------------ opening exactly the checked file
class SourceFile:
    """One descriptor on the file an upload reads, shared by every part: positional reads, no reopening by name."""

    def __init__(self, fd: int, path: Path, st: os.stat_result, size: int) -> None:
        self.fd = fd
        self.path = path
        self.name = path.name
        self.size = size  # what was checked: reading stops here, and a file that grows past it is refused
        self.mtime_ns = st.st_mtime_ns
        self._lock = threading.Lock()  # only where the OS has no positional read

    @classmethod
    def open(cls, path: Path, guard: DataGuard, *, own: bool = False, size: int | None = None) -> SourceFile:
        """Open ``path`` for reading without following a link in its place and without blocking, and refuse it,
        judged by its descriptor, unless it is a regular file that is not one of Jobdeck's.

        ``own`` is for the worker's snapshot in the spool (inside the data folder by design); other paths were
        resolved at submission, so one that resolves elsewhere now had a folder on its way replaced by a link.
        ``size`` is the size checked at submission (default: the file's size now). Raises ``Refused`` and
        ``OSError`` (``FileNotFoundError`` for a file that is gone)."""
        if not own:
            real = os.path.realpath(path)
            if guard.holds(real):
                raise Refused(DATA_FOLDER)
            if real != os.path.abspath(path):
                raise Refused("changed since it was checked: a folder on its path is now a link" + NOT_UPLOADED)
            if guard.owns(os.stat(path, follow_symlinks=False)):
                raise Refused(DATA_FOLDER)
        try:
            fd = os.open(path, OPEN_FLAGS)
        except OSError as exc:
            if os.path.islink(path):
                raise Refused("now a link" + NOT_UPLOADED) from None
            raise exc from None
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if guard.owns(st):
            _kept_open.append(fd)  # closing it would drop this process's SQLite locks on that file
            raise Refused(DATA_FOLDER)
        problem = refusal(os.path.realpath(path), st, None, pseudo_devices())
        if problem is not None:
            os.close(fd)
            raise Refused(problem)
        return cls(fd, Path(path), st, st.st_size if size is None else size)

    def read_into(self, view: memoryview, offset: int) -> int:
        """Fill ``view`` from ``offset``; returns the bytes read (short only at the end of the file)."""
        if hasattr(os, "preadv"):
            return os.preadv(self.fd, [view], offset)
        data = self.read(offset, len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, offset: int, n: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self.fd, n, offset)
        with self._lock:
            os.lseek(self.fd, offset, os.SEEK_SET)
            return os.read(self.fd, n)

    def check_size(self) -> None:
        """Stop an upload whose file grew past (or shrank below) what was checked."""
        now = os.fstat(self.fd).st_size
        if now > self.size:
            raise Refused(f"grew past the {self.size:,} bytes checked at submission while it was being uploaded")
        if now < self.size:
            raise Refused("got shorter while it was being uploaded")

    def copy_to(self, fh: int, limit: int) -> int:
        """Copy the whole file to the descriptor ``fh``, never more than ``limit`` bytes: a file that grows while
        it is copied is refused at the limit, not copied on until the disk is full."""
        buffer = bytearray(COPY_BLOCK)
        view = memoryview(buffer)
        done = 0
        while True:
            got = self.read_into(view, done)
            if not got:
                return done
            done += got
            if done > limit:
                raise Refused(
                    f"grew past the upload limit of {limit:,} bytes while it was being copied (max_upload_bytes)"
                )
            written = 0
            while written < got:
                written += os.write(fh, view[written:got])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# ------------------------------------------------------------------ keys and buckets
def check_key(field: str, key: str, *, prefix: bool = False) -> str:
    """An object key (or, with ``prefix``, the start of one): S3 and every tool that mirrors a bucket to disk read
    ``.``/``..`` segments as paths, and control characters as line breaks in logs and listings."""
    what = "a key prefix" if prefix else "an object key"
    if not key and not prefix:
        raise ValidationError(field, "an object key must not be empty")
    if key.startswith("/"):
        raise ValidationError(field, f"{key!r}: {what} must not start with '/'")
    bad = next((c for c in key if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise ValidationError(field, f"{key!r}: {what} must not contain control characters (found U+{ord(bad):04X})")
    segments = key.split("/")
    if prefix:
        segments = segments[:-1] if not key.endswith("/") else segments
    if any(s in (".", "..") for s in segments):
        raise ValidationError(field, f"{key!r}: {what} must not have '.' or '..' segments")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise ValidationError(field, f"{what} is at most {MAX_KEY_BYTES:,} bytes of UTF-8; this one is {size:,}")
    return key


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket(name: str, field: str = "bucket") -> str:
    """S3's naming rules for general purpose buckets, at submission: a bad name can never succeed."""
    if not _BUCKET_NAME.fullmatch(name):
        raise ValidationError(
            field,
            f"{name!r} is not a valid bucket name (3 to 63 characters: lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit)",
        )
    if ".." in name:
        raise ValidationError(field, f"{name!r} is not a valid bucket name (no two adjacent periods)")
    if _IP_ADDRESS.fullmatch(name):
        raise ValidationError(field, f"{name!r} is not a valid bucket name (it must not look like an IP address)")
    if name.startswith(_BUCKET_PREFIXES) or name.endswith(_BUCKET_SUFFIXES):
        raise ValidationError(
            field,
            f"{name!r} is not a valid bucket name (S3 reserves the prefixes {', '.join(_BUCKET_PREFIXES)} "
            f"and the suffixes {', '.join(_BUCKET_SUFFIXES)})",
        )
    return name
