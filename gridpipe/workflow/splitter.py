"""Splitters: how a unit's input files become jobs. The built-in `files` splitter (files per job, with
protopipe's deterministic run tokens) is the default; others are found through the `gridpipe.splitters`
entry-point group (`gridpipe.core.plugins`), each naming a subclass of `Splitter`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from gridpipe.analysis.naming import run_number, run_token
from gridpipe.core.plugins import Group, load_class


@dataclass(frozen=True)
class Batch:
    """Input files of one job and its token (`runA-runB`)."""

    token: str
    lfns: tuple[str, ...]


def _token(lfns: Sequence[str], first: int | None, last: int | None) -> str:
    if first is None or last is None:
        digest = hashlib.sha1("\n".join(lfns).encode(), usedforsecurity=False).hexdigest()[:10]
        return f"files{digest}"
    return run_token(first, last)


def split_files(lfns: Sequence[str], n_file_per_job: int) -> list[Batch]:
    """Batches of `n_file_per_job` files in run order; tokens made unique within the split."""
    keyed = sorted(
        ((run_number(lfn), lfn) for lfn in lfns), key=lambda p: (-1 if p[0] is None else p[0], p[1])
    )
    batches: list[Batch] = []
    seen: dict[str, int] = {}
    for start in range(0, len(keyed), n_file_per_job):
        part = keyed[start : start + n_file_per_job]
        chunk = tuple(lfn for _, lfn in part)
        token = _token(chunk, part[0][0], part[-1][0])
        if token in seen:
            seen[token] += 1
            token = f"{token}-b{seen[token]}"
        else:
            seen[token] = 1
        batches.append(Batch(token=token, lfns=chunk))
    return batches


class Splitter:
    """Turns a unit's input files into jobs: batches with a token unique within the split, same every time."""

    name: ClassVar[str]

    def split(self, lfns: Sequence[str], n_file_per_job: int) -> list[Batch]:
        """Batches of `lfns`; the same inputs must give the same tokens (job names never change)."""
        raise NotImplementedError


class FilesPerJob(Splitter):
    """`n_file_per_job` files per job, in run order (the default)."""

    name: ClassVar[str] = "files"

    def split(self, lfns: Sequence[str], n_file_per_job: int) -> list[Batch]:
        """See `split_files`."""
        return split_files(lfns, n_file_per_job)


DEFAULT_SPLITTER = FilesPerJob.name


@cache
def splitter_named(name: str) -> Splitter:
    """The installed splitter `name` (UsageError when it is not installed or cannot load)."""
    return load_class(Group.splitters, name, Splitter)()
