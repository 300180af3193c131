"""The `local` storage: a directory plays the grid storage element, a SQLite file its file catalogue.

LFN `/vo/user/x/file.h5` is stored at `<root>/vo/user/x/file.h5`; the catalogue `<root>/.catalogue.db`
(WAL mode, so that many job processes can put at once) records its size, Adler-32 and replica names.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sqlite3
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
from gridpipe.storage.contract import FileInfo, Storage

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


class LocalStorage(Storage):
    """A directory as storage element and a SQLite file catalogue beside the files."""

    name = "local"

    durable = False
    """fsync every put. Off by default: a put is atomic (temp + rename) and its catalogue checksum makes
    every later `get` detect a file torn by a power loss, so the per-file fsync (3 ms here) buys little."""

    def __init__(self, root: Path) -> None:
        with _os_errors(f"local storage root {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.catalogue_path = self.root / f"{RESERVED_PREFIX}.db"
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
        path = self._path(lfn)
        entry = self.stat([lfn]).get(lfn)
        if entry is None:
            raise StorageError(f"{lfn}: no such file in the catalogue of the local storage {self.root}")
        dest = Path(dest)
        with _os_errors(f"get {lfn}"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp, size, adler = _copy_to_temp(path, dest, durable=False)
        try:
            if size != entry.size or not same_adler32(adler, entry.adler32):
                raise StorageError(
                    f"{lfn}: the copy in the storage element ({path}) does not match the catalogue: "
                    f"size {size} adler32 {adler}, expected size {entry.size} adler32 {entry.adler32}; "
                    "put the file again"
                )
            with _os_errors(f"get {lfn}"):
                os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return entry

    def put(self, src: Path, lfn: str, *, replicas: Sequence[str] = ()) -> FileInfo:
        """Store `src` as `lfn` atomically, record its size, Adler-32 and replica names."""
        path = self._path(lfn)
        ses = sorted({SE_NAME, *(_checked_se(se) for se in replicas)})
        with _os_errors(f"put {src} as {lfn}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp, size, adler = _copy_to_temp(Path(src), path, durable=self.durable)
        try:
            with self._writing() as db, _os_errors(f"put {src} as {lfn}"):
                os.replace(tmp, path)
                db.execute(
                    "INSERT OR REPLACE INTO files (lfn, size, adler32, stored) VALUES (?, ?, ?, ?)",
                    (lfn, size, adler, isoformat(utcnow())),
                )
                db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
                db.executemany("INSERT INTO replicas (lfn, se) VALUES (?, ?)", [(lfn, se) for se in ses])
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return FileInfo(lfn, size, adler)

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

    def _path(self, lfn: str) -> Path:
        """Where `lfn` lives below the root; refuses LFNs that would leave it (also through symlinks)."""
        path = self.root / _checked(lfn)[1:]
        if not Path(os.path.realpath(path)).is_relative_to(self.root):
            raise StorageError(
                f"LFN {lfn!r}: resolves outside the local storage root {self.root} through a symbolic "
                "link; remove the link"
            )
        return path

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
    if problem is None and (lfn.endswith("/") or lfn.split("/")[1].startswith(RESERVED_PREFIX)):
        problem = f"an LFN must name a file and may not start with '/{RESERVED_PREFIX}'"
    if problem:
        raise StorageError(f"LFN {lfn!r}: {problem}")
    return lfn


def _checked_se(se: str) -> str:
    """`se`, or StorageError when it is not a plausible storage element name."""
    if not se or any(c.isspace() or not c.isprintable() for c in se):
        raise StorageError(f"replica storage element {se!r}: names may not be empty or contain spaces")
    return se


def _copy_to_temp(src: Path, dest: Path, *, durable: bool) -> tuple[Path, int, str]:
    """Copy `src` to a new temp file beside `dest`; return it with the size and Adler-32 of what was copied."""
    while True:
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as out, open(src, "rb", buffering=0) as source:
            size, adler = copy_with_adler32(source, out)
            if durable:
                out.flush()
                os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size, adler


@contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn an OSError into a one-line StorageError naming the action and the file."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StorageError(f"{action}: {exc.strerror or exc}{where}") from exc


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
