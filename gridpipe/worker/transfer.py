"""Stage a job's inputs from storage into its work folder; register its outputs (size + Adler-32)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from gridpipe.core.models import JobSpec
from gridpipe.storage.contract import FileInfo, Storage


def stage_in(spec: JobSpec, work: Path, storage: Storage) -> None:
    """Copy the sandbox files and get (verified) every input LFN into `work`, by basename."""
    for source in spec.sandbox:
        shutil.copyfile(source, work / Path(source).name)
    for lfn in spec.inputs:
        storage.get(lfn, work / PurePosixPath(lfn).name)


def produced(spec: JobSpec, work: Path) -> list[tuple[str, Path]]:
    """Each output LFN of a grid job with the file in `work` it is registered from (same basename)."""
    return [(lfn, work / PurePosixPath(lfn).name) for lfn in spec.outputs]


def missing_output(outputs: list[tuple[str, Path]]) -> str | None:
    """Why the outputs cannot be registered (the first one not produced), or None."""
    for _, path in outputs:
        if not os.path.isfile(path):
            return f"output {path.name} was not produced"
    return None


def register_outputs(outputs: list[tuple[str, Path]], storage: Storage) -> tuple[FileInfo, ...]:
    """Store every output file under its LFN (moved, not copied, where the storage can)."""
    return tuple(storage.put(path, lfn, move=True) for lfn, path in outputs)


def make_output_folders(spec: JobSpec) -> None:
    """A local job's outputs are folders on this file system: make sure they exist."""
    for folder in spec.outputs:
        Path(folder).mkdir(parents=True, exist_ok=True)
