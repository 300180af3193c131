"""The one storage contract every storage implements (local SE, DIRAC DMS, site plug-ins).

Storages are found through the `gridpipe.storages` entry-point group (`gridpipe.core.plugins`); each
entry point names a subclass of `Storage`. A storage owns its settings: `settings_model` validates its
section `storage.<name>` of configs/grid.yaml, and it declares whether jobs that do not share this
machine's file system can reach it (`reachable_from_grid`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel

from gridpipe.analysis.config import NoSettings
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
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    """The model of the storage's section `storage.<name>` of configs/grid.yaml (every key has a default)."""
    reachable_from_grid: ClassVar[bool] = True
    """Jobs on another machine (a grid site) can read and write it; False for a folder on this machine."""
    parallel_transfers: ClassVar[int] = 8
    """How many gets or puts at once pay off (a local disk: 1, threads only add overhead)."""

    @classmethod
    @abstractmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Build the storage from configs/grid.yaml of the analysis at `analysis_path`."""

    @classmethod
    def new_settings(cls, analysis_path: Path) -> BaseModel:
        """The settings `create-analysis` writes for a new analysis at `analysis_path` (the defaults)."""
        return cls.settings_model()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, pools and files; the storage is not used again. Called by `Analysis.close`."""

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

    @abstractmethod
    def replicas(self, lfn: str) -> list[str]:
        """Storage elements holding `lfn`, sorted; [] when it does not exist."""

    def register(self, src: Path, lfn: str, *, in_place: bool) -> FileInfo:
        """Record the local file `src` as `lfn` without copying it: a hard link into the storage
        (`in_place=False`), or the file where it is (`in_place=True`, the storage reads it there and never
        removes it). StorageError when the storage cannot (the default: only `put` copies)."""
        how = "in place" if in_place else "by a link"
        raise StorageError(
            f"the {self.name} storage cannot register files {how}; add them without it (a copy)"
        )

    def exists(self, lfns: Sequence[str]) -> set[str]:
        """The subset of `lfns` that exists."""
        return set(self.stat(lfns))


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
