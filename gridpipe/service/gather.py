"""Gather a grid unit's outputs: verified sync into data/<data_type>/<particle>/, then merge there."""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gridpipe.core.exceptions import (
    DataTypeNotFoundError,
    DownloadFailedError,
    GridpipeError,
    ParticleNotFoundError,
)
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.storage.contract import FileInfo
from gridpipe.workflow.commands import fill
from gridpipe.workflow.planner import Unit, output_dir_lfn, unit_values, units_of


@dataclass(frozen=True)
class GatherOptions:
    """How to gather: parallel downloads, sync or not, merge or not, and merge settings."""

    jobs: int = 4
    sync: bool = True
    merge: bool = True
    delete_extra: bool = False
    strict: bool = False
    mode: str = "copy"
    remove_inputs: bool = False
    progress: Callable[[FileInfo, bool], None] | None = None


@dataclass(frozen=True)
class GatherResult:
    """Files fetched, failures, and the merged file with its rows per table."""

    local_dir: Path
    fetched: int
    extra: list[str]
    merged: Path | None
    rows: dict[str, int]
    skipped: list[str]
    synced: bool = True
    """Whether storage was asked (a `merge` alone fetches nothing and says nothing of fetching)."""
    merged_inputs: int = 0
    """Local files merged into `merged`."""


def output_pattern(an: Analysis, unit: Unit) -> str:
    """Glob matching the outputs of every job of a unit (the token replaced by `*`)."""
    template = re.sub(r"\{token[^}]*\}", "\0", unit.stage.output or "*")
    text = fill(template, unit_values(an.plan_context(), unit), f"stage '{unit.stage.name}'")
    return glob.escape(text).replace("\0", "*")


def unit_output_names(an: Analysis, unit: Unit) -> set[str]:
    """File names of the outputs of a unit's finished jobs, as the job store records them."""
    jobs = an.store.jobs(stage=unit.stage.name, unit=unit.name, statuses=[JobStatus.DONE])
    return {PurePosixPath(lfn).name for job in jobs for lfn in job.spec.outputs}


def gather_unit(an: Analysis, unit: Unit, options: GatherOptions | None = None) -> GatherResult:
    """Download (sync-recover) and merge one unit's outputs; raises if files are missing after retries."""
    options = options or GatherOptions()
    stage, particle = unit.stage, unit.particle
    local_dir = an.path / "data" / (stage.data_type or stage.name) / particle
    local_dir.mkdir(parents=True, exist_ok=True)
    pattern = output_pattern(an, unit)
    fetched, extra = 0, []
    if options.sync:
        from gridpipe.storage.sync import sync

        report = sync(
            an.storage,
            output_dir_lfn(an.plan_context(), stage, particle),
            local_dir,
            jobs=options.jobs,
            delete_extra=options.delete_extra,
            pattern=pattern,
            progress=options.progress,
        )
        failed = [f"{f.file.lfn}: {f.reason}" for f in report.download.failures]
        if failed:
            raise DownloadFailedError(f"{stage.name}/{particle}", failed)
        fetched, extra = len(report.download.downloaded), [p.name for p in report.plan.extra]
    if not options.merge or stage.merged is None:
        return GatherResult(local_dir, fetched, extra, None, {}, [], options.sync)
    from gridpipe.merge import merge_files

    merged_path = an.merged_path(stage, particle)
    inputs = sorted(p for p in local_dir.glob(pattern) if p.is_file() and p != merged_path)
    expected = unit_output_names(an, unit)
    if expected:  # exactly this unit's outputs: never an older generation's files that share the pattern
        skipped_foreign = [p.name for p in inputs if p.name not in expected]
        inputs = [p for p in inputs if p.name in expected]
    else:
        skipped_foreign = []
    if not inputs:
        raise GridpipeError(
            f"{stage.name}/{particle}: no outputs matching {pattern} in {local_dir} to merge; "
            "download them first"
        )
    payload_rows = _payload_merge(an, inputs, merged_path, options)
    if payload_rows is not None:
        skipped = [
            f"{name}: not an output of this unit's jobs (an older workflow's?); not merged"
            for name in skipped_foreign
        ]
        return GatherResult(
            local_dir, fetched, extra, merged_path, payload_rows, skipped, options.sync, len(inputs)
        )
    merged = merge_files(
        inputs,
        merged_path,
        strict=options.strict,
        overwrite=True,
        mode=options.mode,  # type: ignore[arg-type]
        remove_inputs=options.remove_inputs,
    )
    skipped = [f"{s.path.name}: {s.reason}" for s in merged.skipped]
    skipped += [
        f"{name}: not an output of this unit's jobs (an older workflow's?); not merged"
        for name in skipped_foreign
    ]
    used = len(inputs) - len(merged.skipped)
    return GatherResult(
        local_dir, fetched, extra, merged_path, dict(merged.rows), skipped, options.sync, used
    )


def _payload_merge(
    an: Analysis, inputs: list[Path], merged_path: Path, options: GatherOptions
) -> dict[str, int] | None:
    """Merge with the payload's own merger when it has one (ctapipe-merge); None: gridpipe's merge."""
    from gridpipe.backends.local_start import local_dir_of
    from gridpipe.payloads.contract import payload_named
    from gridpipe.service.payload_merge import run_payload_merge, table_rows
    from gridpipe.worker.workspace import NUMBA_CACHE

    payload = payload_named(an.grid.payload.name)
    temp = merged_path.with_name(f".{merged_path.name}.merging.h5")
    argv = payload.merge_command(inputs, temp)
    if argv is None:
        return None
    temp.unlink(missing_ok=True)  # what a merge killed half-way left
    if len(inputs) == 1:  # nothing to merge: the one output is the merged file (copied, then renamed)
        shutil.copyfile(inputs[0], temp)
        rows = table_rows(temp)
        os.replace(temp, merged_path)
    else:
        rows = run_payload_merge(payload, argv, temp, merged_path, local_dir_of(an.path) / NUMBA_CACHE)
    if options.remove_inputs:
        for path in inputs:
            path.unlink(missing_ok=True)
    return rows


def units_for_data_type(an: Analysis, data_type: str, particles: list[str] | None) -> list[Unit]:
    """Units of the grid stages whose outputs are gathered into data/<data_type>/."""
    stages = [
        s for s in an.workflow.stages if s.kind == "grid" and (s.data_type or s.name) == data_type.strip("/")
    ]
    if not stages:
        known = sorted({s.data_type or s.name for s in an.workflow.stages if s.kind == "grid"})
        raise DataTypeNotFoundError(data_type, known)
    units = [u for s in stages for u in units_of(s, particles)]
    if not units:
        known = sorted({u.particle for s in stages for u in units_of(s)})
        raise ParticleNotFoundError(list(particles or []), data_type, known)
    return units
