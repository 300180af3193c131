"""The `local` storage: a directory plays the grid storage element, a SQLite file its file catalogue.

LFN `/vo/user/x/file.h5` is stored at `<root>/vo/user/x/file.h5`; the catalogue `<root>/.catalogue.db`
(WAL mode, so that many job processes can put at once) records its size, Adler-32 and replica names.

A get or put opens the LFN's folder once, checks where the kernel says that open folder really is (so a
symbolic link anywhere on the way out of the root is refused, however recently it was made) and then works
relative to that open folder, so the check cannot be outrun by a link swapped in afterwards. The file-system
side lives in `local_files`, the catalogue's connections in `local_catalogue`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import Field

from gridpipe.analysis.config import Strict
from gridpipe.analysis.naming import lfn_problem
from gridpipe.core.exceptions import StorageError
from gridpipe.core.sqlite import chunks, marks, select_in
from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.storage import local_files as fs
from gridpipe.storage.checksum import adler32_file, same_adler32
from gridpipe.storage.contract import FileInfo, Storage, remove_moved_source
from gridpipe.storage.local_catalogue import Catalogue

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

RESERVED_PREFIX = ".catalogue"
"""Top-level names below the root that belong to the catalogue; LFNs may not use them."""
SE_NAME = "local"
"""The storage element name every file of this storage has a replica at."""
BUSY_TIMEOUT_S = 60.0
_LOCAL_ONLY = (SE_NAME,)
DEFAULT_ROOT = Path(".gridpipe") / "storage"


class LocalStorageSettings(Strict):
    """`storage.local` of configs/grid.yaml."""

    root: str = Field(
        "",
        description="Directory that plays the storage element and file catalogue "
        "(relative: from the analysis, so it moves with it; '' = .gridpipe/storage in the analysis).",
    )


class LocalStorage(Storage):
    """A directory as storage element and a SQLite file catalogue beside the files."""

    name = "local"
    settings_model: ClassVar[type[Strict]] = LocalStorageSettings
    reachable_from_grid = False
    parallel_transfers = 1

    durable = False
    """fsync every put. Off by default: a put is atomic (temp + rename) and its catalogue checksum makes
    every later `get` detect a file torn by a power loss, so the per-file fsync (3 ms here) buys little."""

    def __init__(self, root: Path) -> None:
        with fs.os_errors(f"local storage root {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.catalogue_path = self.root / f"{RESERVED_PREFIX}.db"
        self._prefix = str(self.root).rstrip("/")
        self._fd_paths = os.path.isdir(fs.FD_PATHS)
        lock = self.root / f"{RESERVED_PREFIX}.lock"
        self._catalogue = Catalogue(self.catalogue_path, lock, timeout=BUSY_TIMEOUT_S)

    @classmethod
    def new_settings(cls, analysis_path: Path) -> LocalStorageSettings:
        """A new analysis names its storage folder relative to itself: moved or copied, it keeps it."""
        return LocalStorageSettings(root=str(DEFAULT_ROOT))

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """The storage at `storage.local.root` of configs/grid.yaml (relative paths: from the analysis)."""
        root = Path(
            grid.storage.settings_for(cls.name, LocalStorageSettings).root or DEFAULT_ROOT
        ).expanduser()
        if root.is_absolute():
            if not root.is_dir() and not root.parent.is_dir():
                raise StorageError(
                    f"local storage root {root} does not exist, nor does the folder above it (was the analysis "
                    "or the storage moved?); set storage.local.root in configs/grid.yaml to where the storage "
                    "is now (a relative path is read from the analysis folder)"
                )
            return cls(root)
        inside = analysis_path / root
        if analysis_path.is_dir():  # a folder of the analysis itself: made as needed
            with fs.os_errors(f"local storage root {inside}"):
                inside.parent.mkdir(parents=True, exist_ok=True)
        return cls(inside)

    def list(self, lfn_dir: str) -> list[FileInfo]:
        """Every file below `lfn_dir` (recursive), sorted by LFN, from one catalogue range query."""
        problem = lfn_problem(lfn_dir)
        if problem:
            raise StorageError(f"LFN folder {lfn_dir!r}: {problem}")
        prefix = lfn_dir.rstrip("/") + "/"
        # Every LFN starting with "<dir>/" sorts in ["<dir>/", "<dir>0"): '0' follows '/' in ASCII.
        sql = "SELECT lfn, size, adler32 FROM files WHERE lfn >= ? AND lfn < ? ORDER BY lfn"
        with self._catalogue.connect() as db:
            rows = db.execute(sql, (prefix, prefix[:-1] + "0")).fetchall()
        return [FileInfo(*row) for row in rows]

    def stat(self, lfns: Sequence[str]) -> dict[str, FileInfo]:
        """Catalogue entries of those `lfns` that exist, in one query per 500 LFNs."""
        wanted = [_checked(lfn) for lfn in dict.fromkeys(lfns)]
        with self._catalogue.connect() as db:
            rows = select_in(db, "SELECT lfn, size, adler32 FROM files", "lfn", wanted)
        return {row[0]: FileInfo(*row) for row in rows}

    def get(self, lfn: str, dest: Path) -> FileInfo:
        """Copy `lfn` to `dest` through a temp file, verified against the catalogue before the rename."""
        _checked(lfn)
        row = self._entry(lfn)
        if row is None:
            raise StorageError(f"{lfn}: no such file in the catalogue of the local storage {self.root}")
        entry = FileInfo(lfn, row[0], row[1])
        dest = os.fspath(dest)
        outside = row[2]
        try:
            if outside is not None:
                source = os.open(outside, os.O_RDONLY | os.O_CLOEXEC)
            else:
                source = fs.open_stored(self.root, lfn, fd_paths=self._fd_paths)
            try:
                tmp, size, adler = fs.copy_to_temp(source, dest, None, durable=False)
            finally:
                os.close(source)
        except OSError as exc:
            raise fs.failed(f"get {lfn}", exc) from exc
        try:
            if size != entry.size or not same_adler32(adler, entry.adler32):
                where = outside or f"{self._prefix}{lfn}"
                raise StorageError(
                    f"{lfn}: the copy in the storage element ({where}) does not match the "
                    f"catalogue: size {size} adler32 {adler}, expected size {entry.size} adler32 "
                    f"{entry.adler32}; put the file again"
                )
            os.replace(tmp, dest)
        except BaseException as exc:
            fs.discard(tmp, None)
            if isinstance(exc, OSError):
                raise fs.failed(f"get {lfn}", exc) from exc
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
            folder = fs.open_folder(self.root, _checked(lfn), create=True, fd_paths=self._fd_paths)
            try:
                info, consume = self._store(folder, src, lfn, ses, move)
            finally:
                os.close(folder)
        except OSError as exc:
            if isinstance(exc.filename, str) and exc.filename != src and not exc.filename.startswith("/"):
                exc.filename = f"{self._prefix}{lfn[: lfn.rfind('/')]}/{exc.filename}"  # a temp file's name
            raise fs.failed(f"put {src} as {lfn}", exc) from exc
        if consume:
            remove_moved_source(src, lfn)
        return info

    def remove(self, lfns: Sequence[str]) -> None:
        """Remove files and their catalogue entries; missing ones are ignored."""
        paths = {lfn: fs.confined_path(self.root, _checked(lfn)) for lfn in dict.fromkeys(lfns)}
        with self._catalogue.writing() as db:
            for chunk in chunks(list(paths)):
                db.execute(f"DELETE FROM files WHERE lfn IN ({marks(chunk)})", chunk)  # noqa: S608
                db.execute(f"DELETE FROM replicas WHERE lfn IN ({marks(chunk)})", chunk)  # noqa: S608
                db.execute(f"DELETE FROM external WHERE lfn IN ({marks(chunk)})", chunk)  # noqa: S608
            with fs.os_errors("remove"):
                for path in paths.values():
                    path.unlink(missing_ok=True)

    def register(self, src: Path, lfn: str, *, in_place: bool) -> FileInfo:
        """Record `src` as `lfn` without a copy: hard-linked into the storage folder (same file system
        only), or `in_place`: read where it is (its path is recorded; removing the LFN never removes it).
        Either way its size and Adler-32 are recorded and every later `get` checks them."""
        src = os.path.realpath(src)
        try:
            folder = fs.open_folder(self.root, _checked(lfn), create=True, fd_paths=self._fd_paths)
            try:
                return self._register(folder, src, lfn, in_place)
            finally:
                os.close(folder)
        except OSError as exc:
            raise fs.failed(f"register {src} as {lfn}", exc) from exc

    def _register(self, folder: int, src: str, lfn: str, in_place: bool) -> FileInfo:
        name = lfn[lfn.rfind("/") + 1 :]
        if in_place:
            if not os.path.isfile(src):
                raise OSError(22, "not a regular file", src)
            tmp, size, adler = None, os.path.getsize(src), adler32_file(src)
        else:
            tmp, size, adler = fs.link_to_temp(src, name, folder)
        try:
            with self._catalogue.writing() as db:
                db.execute(
                    "INSERT OR REPLACE INTO files (lfn, size, adler32, stored) VALUES (?, ?, ?, ?)",
                    (lfn, size, adler, isoformat(utcnow())),
                )
                db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
                db.execute("INSERT INTO replicas (lfn, se) VALUES (?, ?)", (lfn, SE_NAME))
                db.execute("DELETE FROM external WHERE lfn = ?", (lfn,))
                if in_place:
                    db.execute("INSERT INTO external (lfn, path) VALUES (?, ?)", (lfn, src))
                    fs.discard(name, folder)  # an earlier copy under this LFN
                else:
                    os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            if tmp is not None:
                fs.discard(tmp, folder)
            raise
        return FileInfo(lfn, size, adler)

    def _entry(self, lfn: str) -> tuple[int, str, str | None] | None:
        """(size, adler32, path of a file registered in place or None) of `lfn`, in one query."""
        sql = "SELECT f.size, f.adler32, e.path FROM files f LEFT JOIN external e ON e.lfn = f.lfn WHERE f.lfn = ?"
        try:
            with self._catalogue.connect() as db:
                return db.execute(sql, (lfn,)).fetchone()  # type: ignore[no-any-return]
        except StorageError as exc:  # a read-only catalogue of an older gridpipe has no `external` table
            if "no such table" not in str(exc.__cause__):
                raise
        with self._catalogue.connect() as db:
            row = db.execute("SELECT size, adler32 FROM files WHERE lfn = ?", (lfn,)).fetchone()
        return None if row is None else (row[0], row[1], None)

    def replicas(self, lfn: str) -> list[str]:
        """Names of the storage elements `lfn` is replicated to, sorted ([] when `lfn` does not exist)."""
        with self._catalogue.connect() as db:
            rows = db.execute("SELECT se FROM replicas WHERE lfn = ? ORDER BY se", (_checked(lfn),))
            return [se for (se,) in rows]

    def close(self) -> None:
        """Close the idle catalogue connections (new ones are opened if the storage is used again)."""
        self._catalogue.close()

    def _store(
        self, folder: int, src: str, lfn: str, ses: Sequence[str], move: bool
    ) -> tuple[FileInfo, bool]:
        """Stage `src` beside the LFN's file, then record it and rename it into place in one transaction."""
        name = lfn[lfn.rfind("/") + 1 :]
        tmp, size, adler, consume = fs.stage(src, name, folder, move=move, durable=self.durable)
        try:
            with self._catalogue.writing() as db:
                db.execute(
                    "INSERT OR REPLACE INTO files (lfn, size, adler32, stored) VALUES (?, ?, ?, ?)",
                    (lfn, size, adler, isoformat(utcnow())),
                )
                db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
                db.execute("DELETE FROM external WHERE lfn = ?", (lfn,))
                db.executemany("INSERT INTO replicas (lfn, se) VALUES (?, ?)", [(lfn, se) for se in ses])
                os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            fs.discard(tmp, folder)
            raise
        return FileInfo(lfn, size, adler), consume


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
