"""The one storage contract every storage implements (local SE, DIRAC DMS, site plug-ins).

Storages are found through the `gridpipe.storages` entry-point group; each entry point names a
class with a `from_config(grid, analysis_path)` class method.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from gridpipe.core.exceptions import StorageError

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig


@dataclass(frozen=True)
class FileInfo:
    """A catalogue entry: LFN, size in bytes, Adler-32 as 8 lowercase hex digits (as DIRAC records it)."""

    lfn: str
    size: int
    adler32: str


class Storage(ABC):
    """List, stat, get (verified), put (checksummed, replicated), remove. Every method is bulk-friendly."""

    name: ClassVar[str]
    parallel_transfers: ClassVar[int] = 8
    """How many gets or puts at once pay off (a local disk: 1, threads only add overhead)."""

    @classmethod
    @abstractmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Build the storage from configs/grid.yaml of the analysis at `analysis_path`."""

    @abstractmethod
    def list(self, lfn_dir: str) -> list[FileInfo]:
        """Every file below `lfn_dir` (recursive), sorted by LFN; [] when the folder does not exist."""

    @abstractmethod
    def stat(self, lfns: Sequence[str]) -> dict[str, FileInfo]:
        """Catalogue entries of those `lfns` that exist (missing ones are absent from the result)."""

    @abstractmethod
    def get(self, lfn: str, dest: Path) -> FileInfo:
        """Copy `lfn` to the local file `dest`, verified (size + Adler-32) and atomic; StorageError if bad."""

    @abstractmethod
    def put(self, src: Path, lfn: str, *, replicas: Sequence[str] = (), move: bool = False) -> FileInfo:
        """Store the local file `src` as `lfn` (replacing it), replicate to `replicas`, return its entry.

        `move=True` says the caller no longer needs `src`: the storage may consume it (e.g. rename it into
        place when it is on the same file system) and removes it after a successful put; when the put fails,
        `src` is left as it was.
        """

    @abstractmethod
    def remove(self, lfns: Sequence[str]) -> None:
        """Remove files and their catalogue entries; missing ones are ignored."""

    def exists(self, lfns: Sequence[str]) -> set[str]:
        """The subset of `lfns` that exists."""
        return set(self.stat(lfns))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the storage holds (connections, clients); may be called more than once."""


def remove_moved_source(src: str | os.PathLike[str], lfn: str) -> None:
    """Remove the source of a successful `put(..., move=True)`; StorageError (the file is stored) if it stays."""
    try:
        os.unlink(src)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageError(
            f"put {os.fspath(src)} as {lfn}: stored, but the source could not be removed ({exc.strerror}); "
            "remove it by hand"
        ) from exc
