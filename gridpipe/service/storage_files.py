"""`gridpipe storage add|ls|rm`: users bring their own files into the analysis's storage.

`add` takes files and folders (a folder's files keep their paths below it) under one LFN folder: copied
into the storage, hard-linked into it (`link`), or registered where they are (`in_place`), always with
their size and Adler-32. Every LFN is worked out and checked before the first file is stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gridpipe.analysis.naming import join_lfn, lfn_problem
from gridpipe.core.exceptions import UsageError
from gridpipe.storage.contract import FileInfo, Storage

AddMode = Literal["copy", "link", "in-place"]


@dataclass(frozen=True)
class Addition:
    """One local file and the LFN it becomes."""

    path: Path
    lfn: str


def plan_additions(paths: Sequence[Path], lfn_dir: str) -> list[Addition]:
    """The LFN of every file in `paths` (folders walked, sorted); UsageError naming the first problem."""
    problem = lfn_problem(lfn_dir)
    if problem:
        raise UsageError(f"LFN folder {lfn_dir!r}: {problem}")
    plan: list[Addition] = []
    for path in paths:
        if path.is_dir():
            plan += [Addition(f, join_lfn(lfn_dir, *f.relative_to(path).parts)) for f in _files_below(path)]
        elif path.is_file():
            plan.append(Addition(path, join_lfn(lfn_dir, path.name)))
        else:
            raise UsageError(f"{path}: no such file or folder")
    seen: dict[str, Path] = {}
    for item in plan:
        problem = lfn_problem(item.lfn)
        if problem:
            raise UsageError(f"{item.path}: its LFN {item.lfn!r} is not valid: {problem}")
        if item.lfn in seen:
            raise UsageError(f"{seen[item.lfn]} and {item.path} would both become {item.lfn}")
        seen[item.lfn] = item.path
    return plan


def _files_below(folder: Path) -> Iterable[Path]:
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(top) / name
            if path.is_file():
                yield path


def add_files(
    storage: Storage,
    plan: Sequence[Addition],
    mode: AddMode,
    progress: Callable[[FileInfo], None] | None = None,
) -> list[FileInfo]:
    """Store (or register) every planned file; the catalogue entries made."""
    added = []
    for item in plan:
        if mode == "copy":
            info = storage.put(item.path, item.lfn)
        else:
            info = storage.register(item.path, item.lfn, in_place=mode == "in-place")
        added.append(info)
        if progress is not None:
            progress(info)
    return added


def remove_files(storage: Storage, lfns: Sequence[str], *, recursive: bool) -> list[str]:
    """Remove files (and with `recursive`, every file below LFN folders); the LFNs removed."""
    found = storage.stat(lfns)
    gone = list(found)
    if recursive:
        for lfn in lfns:
            if lfn not in found:
                gone += [info.lfn for info in storage.list(lfn)]
    missing = [
        lfn for lfn in lfns if lfn not in found and not any(g.startswith(lfn.rstrip("/") + "/") for g in gone)
    ]
    if missing:
        hint = " (a folder: add --recursive)" if not recursive else ""
        raise UsageError(f"not in storage: {', '.join(missing[:5])}{hint}; nothing was removed")
    storage.remove(gone)
    return gone


def unknown_inputs(storage: Storage, lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per input list, the LFNs the storage does not know (one bulk stat for all lists)."""
    wanted = sorted({lfn for lfns in lists.values() for lfn in lfns})
    known = storage.exists(wanted) if wanted else set()
    return {key: [lfn for lfn in lfns if lfn not in known] for key, lfns in lists.items()}
