"""The file-system side of the local storage: stored files opened only below the root, and temp files.

A folder is opened once and the kernel asked where that open folder really is (`/proc/self/fd`, else
`os.path.realpath`), so a symbolic link on the way out of the root is refused however recently it was made;
work then goes on relative to the open folder. Files travel through a checksummed temp copy or hard link
beside their final name, and OSErrors become one-line StorageErrors naming the action and the file.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gridpipe.core.exceptions import StorageError
from gridpipe.storage.checksum import copy_with_adler32

FD_PATHS = "/proc/self/fd"
"""Where Linux tells the real path of an open file descriptor; without it, os.path.realpath is used."""
_FOLDER_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def open_folder(root: Path, lfn: str, *, create: bool, fd_paths: bool) -> int:
    """An open descriptor of the folder of `lfn`, which the kernel confirms lies below `root`."""
    folder = str(root).rstrip("/") + lfn[: lfn.rfind("/")] or "/"
    try:
        fd = os.open(folder, _FOLDER_FLAGS)
    except FileNotFoundError:
        if not create:
            raise
        confined_path(root, lfn)  # refuse before creating anything through a link leading out of the root
        os.makedirs(folder, exist_ok=True)
        fd = os.open(folder, _FOLDER_FLAGS)
    if not _below_root(root, fd, folder, fd_paths):
        os.close(fd)
        raise escape_error(root, lfn)
    return fd


def open_stored(root: Path, lfn: str, *, fd_paths: bool) -> int:
    """A read descriptor of the file of `lfn`; symbolic links are followed only while they stay below `root`
    (the kernel tells where the opened file really is)."""
    path = str(root).rstrip("/") + lfn
    fd = os.open(path, _READ)
    if not _below_root(root, fd, path, fd_paths):
        os.close(fd)
        raise escape_error(root, lfn)
    return fd


def confined_path(root: Path, lfn: str) -> Path:
    """Where `lfn` lives below `root`; refuses LFNs that would leave it (also through symlinks)."""
    path = root / lfn[1:]
    if not Path(os.path.realpath(path)).is_relative_to(root):
        raise escape_error(root, lfn)
    return path


def escape_error(root: Path, lfn: str) -> StorageError:
    """The error for an LFN whose path leads out of `root`."""
    return StorageError(
        f"LFN {lfn!r}: resolves outside the local storage root {root} through a symbolic link; remove the link"
    )


def _below_root(root: Path, fd: int, path: str, fd_paths: bool) -> bool:
    """Whether the open `fd` (opened as `path`) really lies below `root`, symbolic links resolved."""
    prefix = str(root).rstrip("/")
    real = os.readlink(f"{FD_PATHS}/{fd}") if fd_paths else os.path.realpath(path)
    return real.startswith(prefix + "/") or real == prefix


def stage(src: str, name: str, folder: int, *, move: bool, durable: bool) -> tuple[str, int, str, bool]:
    """A temp file of `src` beside `name` in `folder`: its name, size, Adler-32 and whether `src` may go.

    With `move`, a lone regular file is hard-linked (read once for its checksum, never copied), anything
    else copied; `src` being the very file stored as `name` is copied and kept.
    """
    staged = None
    if move:
        found = os.lstat(src)
        if _same_file(found, name, folder):
            move = False  # `src` is the stored file itself: consuming it would delete what was stored
        elif stat.S_ISREG(found.st_mode) and found.st_nlink == 1:
            staged = _link_to_temp(src, name, folder, durable=durable)
    if staged is None:
        source = os.open(src, _READ)
        try:
            staged = copy_to_temp(source, name, folder, durable=durable)
        finally:
            os.close(source)
    return (*staged, move)


def link_to_temp(src: str, name: str, folder: int) -> tuple[str, int, str]:
    """Hard-link the regular file `src` as a temp file beside `name` in `folder` and checksum it (the
    storage shares the user's file: nothing is copied); OSError when it cannot be linked there."""
    if not stat.S_ISREG(os.stat(src).st_mode):
        raise OSError(22, "not a regular file", src)
    while True:
        tmp = _temp_name(name)
        try:
            os.link(src, tmp, dst_dir_fd=folder, follow_symlinks=True)
            break
        except FileExistsError:
            continue
    try:
        fd = os.open(tmp, _READ | os.O_NOFOLLOW, dir_fd=folder)
        try:
            size, adler = copy_with_adler32(fd, None)
        finally:
            os.close(fd)
    except BaseException:
        discard(tmp, folder)
        raise
    return tmp, size, adler


def _temp_name(path: str) -> str:
    """A fresh temp name beside `path` (`.NAME.XXXXXXXX.part`, the pattern a sync recognises)."""
    head, _, tail = path.rpartition("/")
    return f"{head}{'/' if head or path.startswith('/') else ''}.{tail}.{secrets.token_hex(4)}.part"


def copy_to_temp(source: int, dest: str, folder: int | None, *, durable: bool) -> tuple[str, int, str]:
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
        discard(tmp, folder)
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
        discard(tmp, folder)
        return None
    try:
        try:
            found = os.fstat(fd)
            if not stat.S_ISREG(found.st_mode) or found.st_nlink != 2:
                discard(tmp, folder)  # a link or a file with other names: the storage must own its copy
                return None
            size, adler = copy_with_adler32(fd, None)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        discard(tmp, folder)
        raise
    return tmp, size, adler


def _same_file(src: os.stat_result, name: str, folder: int) -> bool:
    """Whether `src` (its lstat) is the very file stored as `name` in `folder`."""
    try:
        there = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (src.st_dev, src.st_ino) == (there.st_dev, there.st_ino)


def discard(tmp: str, folder: int | None) -> None:
    """Remove a temp file if it is still there."""
    try:
        os.unlink(tmp, dir_fd=folder)
    except OSError:
        pass


def failed(action: str, exc: OSError) -> StorageError:
    """A one-line StorageError for `exc`, naming the action and the file."""
    where = f" ({exc.filename})" if exc.filename else ""
    return StorageError(f"{action}: {exc.strerror or exc}{where}")


@contextmanager
def os_errors(action: str) -> Iterator[None]:
    """Turn an OSError into a one-line StorageError naming the action and the file."""
    try:
        yield
    except OSError as exc:
        raise failed(action, exc) from exc
