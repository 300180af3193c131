"""The `local` storage: a directory plays the grid storage element, a SQLite file its file catalogue.

LFN `/vo/user/x/file.h5` is stored at `<root>/vo/user/x/file.h5`; the catalogue `<root>/.catalogue.db`
(WAL mode, so that many job processes can put at once) records its size, Adler-32 and replica names.

A get or put opens the LFN's folder once, checks where the kernel says that open folder really is (so a
symbolic link anywhere on the way out of the root is refused, however recently it was made) and then works
relative to that open folder, so the check cannot be outrun by a link swapped in afterwards.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import sqlite3
import stat
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Self

from gridpipe.analysis.naming import lfn_problem
from gridpipe.core.exceptions import StorageError
from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.storage.checksum import copy_with_adler32, same_adler32
from gridpipe.storage.contract import FileInfo, Storage, remove_moved_source

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

RESERVED_PREFIX = ".catalogue"
"""Top-level names below the root that belong to the catalogue; LFNs may not use them."""
SE_NAME = "local"
"""The storage element name every file of this storage has a replica at."""
BUSY_TIMEOUT_S = 60.0
_CHUNK = 500
_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child inherited: never used nor closed there (SQLite forbids both)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    lfn TEXT PRIMARY KEY, size INTEGER NOT NULL, adler32 TEXT NOT NULL, stored TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replicas (lfn TEXT NOT NULL, se TEXT NOT NULL, PRIMARY KEY (lfn, se)) WITHOUT ROWID;
"""
_LOCAL_ONLY = (SE_NAME,)
_FOLDER_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_FD_PATHS = "/proc/self/fd"
"""Where Linux tells the real path of an open file descriptor; without it, os.path.realpath is used."""


class LocalStorage(Storage):
    """A directory as storage element and a SQLite file catalogue beside the files."""

    name = "local"
    parallel_transfers = 1

    durable = False
    """fsync every put. Off by default: a put is atomic (temp + rename) and its catalogue checksum makes
    every later `get` detect a file torn by a power loss, so the per-file fsync (3 ms here) buys little."""

    def __init__(self, root: Path) -> None:
        with _os_errors(f"local storage root {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.catalogue_path = self.root / f"{RESERVED_PREFIX}.db"
        self._prefix = str(self.root).rstrip("/")
        self._fd_paths = os.path.isdir(_FD_PATHS)
        self._idle: SimpleQueue[sqlite3.Connection] = SimpleQueue()
        self._pid = os.getpid()
        weakref.finalize(self, _close_idle, self._idle)
        self._init_catalogue()

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """The storage at `storage.local_root` of configs/grid.yaml (relative paths: from the analysis)."""
        root = Path(grid.storage.local_root).expanduser()
        return cls(root if root.is_absolute() else analysis_path / root)

    def list(self, lfn_dir: str) -> list[FileInfo]:
        """Every file below `lfn_dir` (recursive), sorted by LFN, from one catalogue range query."""
        problem = lfn_problem(lfn_dir)
        if problem:
            raise StorageError(f"LFN folder {lfn_dir!r}: {problem}")
        prefix = lfn_dir.rstrip("/") + "/"
        # Every LFN starting with "<dir>/" sorts in ["<dir>/", "<dir>0"): '0' follows '/' in ASCII.
        sql = "SELECT lfn, size, adler32 FROM files WHERE lfn >= ? AND lfn < ? ORDER BY lfn"
        with self._connect() as db:
            rows = db.execute(sql, (prefix, prefix[:-1] + "0")).fetchall()
        return [FileInfo(*row) for row in rows]

    def stat(self, lfns: Sequence[str]) -> dict[str, FileInfo]:
        """Catalogue entries of those `lfns` that exist, in one query per 500 LFNs."""
        wanted = [_checked(lfn) for lfn in dict.fromkeys(lfns)]
        found: dict[str, FileInfo] = {}
        with self._connect() as db:
            for chunk in _chunks(wanted):
                sql = f"SELECT lfn, size, adler32 FROM files WHERE lfn IN ({_marks(chunk)})"  # noqa: S608
                found.update((row[0], FileInfo(*row)) for row in db.execute(sql, chunk))
        return found

    def get(self, lfn: str, dest: Path) -> FileInfo:
        """Copy `lfn` to `dest` through a temp file, verified against the catalogue before the rename."""
        _checked(lfn)
        with self._connect() as db:
            row = db.execute("SELECT size, adler32 FROM files WHERE lfn = ?", (lfn,)).fetchone()
        if row is None:
            raise StorageError(f"{lfn}: no such file in the catalogue of the local storage {self.root}")
        entry = FileInfo(lfn, *row)
        dest = os.fspath(dest)
        try:
            source = self._open_stored(lfn)
            try:
                tmp, size, adler = _copy_to_temp(source, dest, None, durable=False)
            finally:
                os.close(source)
        except OSError as exc:
            raise _failed(f"get {lfn}", exc) from exc
        try:
            if size != entry.size or not same_adler32(adler, entry.adler32):
                raise StorageError(
                    f"{lfn}: the copy in the storage element ({self._prefix}{lfn}) does not match the "
                    f"catalogue: size {size} adler32 {adler}, expected size {entry.size} adler32 "
                    f"{entry.adler32}; put the file again"
                )
            os.replace(tmp, dest)
        except BaseException as exc:
            _discard(tmp, None)
            if isinstance(exc, OSError):
                raise _failed(f"get {lfn}", exc) from exc
            raise
        return entry

    def put(self, src: Path, lfn: str, *, replicas: Sequence[str] = (), move: bool = False) -> FileInfo:
        """Store `src` as `lfn` atomically, record its size, Adler-32 and replica names in one transaction.

        With `move`, `src` is hard-linked into place when it is on the storage's file system (read once for
        its checksum, never copied) and removed once the catalogue records it; else copied, then removed.
        """
        ses = sorted({SE_NAME, *(_checked_se(se) for se in replicas)}) if replicas else _LOCAL_ONLY
        src = os.fspath(src)
        try:
            folder = self._open_folder(_checked(lfn), create=True)
            try:
                info, consume = self._store(folder, src, lfn, ses, move)
            finally:
                os.close(folder)
        except OSError as exc:
            if isinstance(exc.filename, str) and exc.filename != src and not exc.filename.startswith("/"):
                exc.filename = f"{self._prefix}{lfn[: lfn.rfind('/')]}/{exc.filename}"  # a temp file's name
            raise _failed(f"put {src} as {lfn}", exc) from exc
        if consume:
            remove_moved_source(src, lfn)
        return info

    def remove(self, lfns: Sequence[str]) -> None:
        """Remove files and their catalogue entries; missing ones are ignored."""
        paths = {lfn: self._path(lfn) for lfn in dict.fromkeys(lfns)}
        with self._writing() as db:
            for chunk in _chunks(list(paths)):
                db.execute(f"DELETE FROM files WHERE lfn IN ({_marks(chunk)})", chunk)  # noqa: S608
                db.execute(f"DELETE FROM replicas WHERE lfn IN ({_marks(chunk)})", chunk)  # noqa: S608
            with _os_errors("remove"):
                for path in paths.values():
                    path.unlink(missing_ok=True)

    def replicas(self, lfn: str) -> list[str]:
        """Names of the storage elements `lfn` is replicated to, sorted ([] when `lfn` does not exist)."""
        with self._connect() as db:
            rows = db.execute("SELECT se FROM replicas WHERE lfn = ? ORDER BY se", (_checked(lfn),))
            return [se for (se,) in rows]

    def _store(
        self, folder: int, src: str, lfn: str, ses: Sequence[str], move: bool
    ) -> tuple[FileInfo, bool]:
        """Stage `src` beside the LFN's file, then record it and rename it into place in one transaction."""
        name = lfn[lfn.rfind("/") + 1 :]
        staged = None
        if move:
            found = os.lstat(src)
            if _same_file(found, name, folder):
                move = False  # `src` is the stored file itself: consuming it would delete what was stored
            elif stat.S_ISREG(found.st_mode) and found.st_nlink == 1:
                staged = _link_to_temp(src, name, folder, durable=self.durable)
        if staged is None:
            source = os.open(src, _READ)
            try:
                staged = _copy_to_temp(source, name, folder, durable=self.durable)
            finally:
                os.close(source)
        tmp, size, adler = staged
        try:
            with self._writing() as db:
                db.execute(
                    "INSERT OR REPLACE INTO files (lfn, size, adler32, stored) VALUES (?, ?, ?, ?)",
                    (lfn, size, adler, isoformat(utcnow())),
                )
                db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
                db.executemany("INSERT INTO replicas (lfn, se) VALUES (?, ?)", [(lfn, se) for se in ses])
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            _discard(tmp, folder)
            raise
        return FileInfo(lfn, size, adler), move

    def _open_folder(self, lfn: str, *, create: bool) -> int:
        """An open descriptor of the folder of `lfn`, which the kernel confirms lies below the root."""
        folder = self._prefix + lfn[: lfn.rfind("/")] or "/"
        try:
            fd = os.open(folder, _FOLDER_FLAGS)
        except FileNotFoundError:
            if not create:
                raise
            self._path(lfn)  # refuse before creating anything through a link leading out of the root
            os.makedirs(folder, exist_ok=True)
            fd = os.open(folder, _FOLDER_FLAGS)
        if not self._below_root(fd, folder):
            os.close(fd)
            raise self._escape(lfn)
        return fd

    def _open_stored(self, lfn: str) -> int:
        """A read descriptor of the file of `lfn`; a symbolic link is followed only when it stays below the root."""
        folder = self._open_folder(lfn, create=False)
        name = lfn[lfn.rfind("/") + 1 :]
        try:
            try:
                return os.open(name, _READ | os.O_NOFOLLOW, dir_fd=folder)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    exc.filename = self._prefix + lfn
                    raise
            fd = os.open(name, _READ, dir_fd=folder)
        finally:
            os.close(folder)
        if not self._below_root(fd, self._prefix + lfn):
            os.close(fd)
            raise self._escape(lfn)
        return fd

    def _below_root(self, fd: int, path: str) -> bool:
        """Whether the open `fd` (opened as `path`) really lies below the root, symbolic links resolved."""
        real = os.readlink(f"{_FD_PATHS}/{fd}") if self._fd_paths else os.path.realpath(path)
        return real.startswith(self._prefix + "/") or real == self._prefix

    def _path(self, lfn: str) -> Path:
        """Where `lfn` lives below the root; refuses LFNs that would leave it (also through symlinks)."""
        path = self.root / _checked(lfn)[1:]
        if not Path(os.path.realpath(path)).is_relative_to(self.root):
            raise self._escape(lfn)
        return path

    def _escape(self, lfn: str) -> StorageError:
        """The error for an LFN whose path leads out of the root."""
        return StorageError(
            f"LFN {lfn!r}: resolves outside the local storage root {self.root} through a symbolic "
            "link; remove the link"
        )

    def _init_catalogue(self) -> None:
        """Create the catalogue in WAL mode once, under a file lock (several processes may start at once)."""
        with _os_errors("local storage catalogue"), open(self.root / f"{RESERVED_PREFIX}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with self._connect() as db:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the idle catalogue connections (new ones are opened if the storage is used again)."""
        _close_idle(self._idle)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """An idle pooled connection (autocommit, busy timeout) or a new one; pooled again when clean."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            _INHERITED.extend(_drain(self._idle))
        try:
            try:
                db = self._idle.get_nowait()
            except Empty:
                db = sqlite3.connect(
                    self.catalogue_path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA synchronous=NORMAL")
            try:
                yield db
            except BaseException:
                db.close()
                raise
            self._idle.put(db)
        except sqlite3.Error as exc:
            raise StorageError(f"local storage catalogue {self.catalogue_path}: {exc}") from exc

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE): writers queue instead of deadlocking."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _checked(lfn: str) -> str:
    """`lfn`, or StorageError when it is not a valid file LFN of this storage."""
    problem = lfn_problem(lfn)
    if problem is None and (lfn.endswith("/") or lfn.split("/", 2)[1].startswith(RESERVED_PREFIX)):
        problem = f"an LFN must name a file and may not start with '/{RESERVED_PREFIX}'"
    if problem:
        raise StorageError(f"LFN {lfn!r}: {problem}")
    return lfn


def _checked_se(se: str) -> str:
    """`se`, or StorageError when it is not a plausible storage element name."""
    if not se or any(c.isspace() or not c.isprintable() for c in se):
        raise StorageError(f"replica storage element {se!r}: names may not be empty or contain spaces")
    return se


def _temp_name(path: str) -> str:
    """A fresh temp name beside `path` (`.NAME.XXXXXXXX.part`, the pattern a sync recognises)."""
    head, _, tail = path.rpartition("/")
    return f"{head}{'/' if head or path.startswith('/') else ''}.{tail}.{secrets.token_hex(4)}.part"


def _copy_to_temp(source: int, dest: str, folder: int | None, *, durable: bool) -> tuple[str, int, str]:
    """Copy `source` to a new temp file beside `dest` (relative to `folder`); return it, its size and Adler-32."""
    parent = os.path.dirname(dest) if folder is None else ""
    while True:
        tmp = _temp_name(dest)
        try:
            fd = os.open(tmp, _CREATE, 0o666, dir_fd=folder)
            break
        except FileExistsError:
            continue
        except FileNotFoundError:
            if not parent:
                raise
            os.makedirs(parent, exist_ok=True)
            parent = ""  # created once; a second miss is an error
    try:
        try:
            size, adler = copy_with_adler32(source, fd)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _discard(tmp, folder)
        raise
    return tmp, size, adler


def _link_to_temp(src: str, name: str, folder: int, *, durable: bool) -> tuple[str, int, str] | None:
    """Hard-link `src` as a temp file in `folder` and checksum it; None when it cannot be linked alone there."""
    while True:
        tmp = _temp_name(name)
        try:
            os.link(src, tmp, dst_dir_fd=folder, follow_symlinks=False)
            break
        except FileExistsError:
            continue
        except OSError:  # another file system, no hard links there, not permitted: copy instead
            return None
    try:
        fd = os.open(tmp, _READ | os.O_NOFOLLOW, dir_fd=folder)
    except OSError:  # `src` was swapped for a symbolic link meanwhile: copy what it is now instead
        _discard(tmp, folder)
        return None
    try:
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode) or found.st_nlink != 2:
                _discard(tmp, folder)  # a link or a file with other names: the storage must own its copy
                return None
            size, adler = copy_with_adler32(fd, None)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _discard(tmp, folder)
        raise
    return tmp, size, adler


def _same_file(src: os.stat_result, name: str, folder: int) -> bool:
    """Whether `src` (its lstat) is the very file stored as `name` in `folder`."""
    try:
        there = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (src.st_dev, src.st_ino) == (there.st_dev, there.st_ino)


def _discard(tmp: str, folder: int | None) -> None:
    """Remove a temp file if it is still there."""
    try:
        os.unlink(tmp, dir_fd=folder)
    except OSError:
        pass


def _failed(action: str, exc: OSError) -> StorageError:
    """A one-line StorageError for `exc`, naming the action and the file."""
    where = f" ({exc.filename})" if exc.filename else ""
    return StorageError(f"{action}: {exc.strerror or exc}{where}")


@contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn an OSError into a one-line StorageError naming the action and the file."""
    try:
        yield
    except OSError as exc:
        raise _failed(action, exc) from exc


def _drain(idle: SimpleQueue[sqlite3.Connection]) -> list[sqlite3.Connection]:
    """Take every connection out of `idle`."""
    taken = []
    while not idle.empty():
        taken.append(idle.get_nowait())
    return taken


def _close_idle(idle: SimpleQueue[sqlite3.Connection]) -> None:
    """Close every idle connection."""
    for db in _drain(idle):
        db.close()


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """Slices of at most _CHUNK items (SQLite limits the variables of one statement)."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(chunk: Sequence[str]) -> str:
    """Placeholders for an IN list of `chunk`."""
    return ",".join("?" * len(chunk))
