"""Gather a grid unit's outputs: verified sync into data/<data_type>/<particle>/, then merge there."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from gridpipe.core.exceptions import GridpipeError
from gridpipe.service.context import Analysis
from gridpipe.workflow.commands import fill
from gridpipe.workflow.planner import Unit, output_dir_lfn, unit_values


@dataclass(frozen=True)
class GatherResult:
    """Files fetched, failures, and the merged file with its rows per table."""

    local_dir: Path
    fetched: int
    failed: list[str]
    extra: list[str]
    merged: Path | None
    rows: dict[str, int]
    skipped: list[str]


def output_pattern(an: Analysis, unit: Unit) -> str:
    """Glob matching the outputs of every job of a unit (the token replaced by `*`)."""
    template = re.sub(r"\{token[^}]*\}", "\0", unit.stage.output or "*")
    text = fill(template, unit_values(an.plan_context(), unit), f"stage '{unit.stage.name}'")
    return glob.escape(text).replace("\0", "*")


def gather_unit(
    an: Analysis,
    unit: Unit,
    *,
    jobs: int = 4,
    merge: bool = True,
    delete_extra: bool = False,
    strict: bool = False,
) -> GatherResult:
    """Download (sync-recover) and merge one unit's outputs; raises if files are missing after retries."""
    from gridpipe.storage.sync import sync

    stage, particle = unit.stage, unit.particle
    local_dir = an.path / "data" / (stage.data_type or stage.name) / particle
    local_dir.mkdir(parents=True, exist_ok=True)
    pattern = output_pattern(an, unit)
    report = sync(
        an.storage,
        output_dir_lfn(an.plan_context(), stage, particle),
        local_dir,
        jobs=jobs,
        delete_extra=delete_extra,
        pattern=pattern,
    )
    failed = [f"{f.file.lfn}: {f.reason}" for f in report.download.failures]
    extra = [p.name for p in report.plan.extra]
    if failed:
        raise GridpipeError(
            f"{stage.name}/{particle}: {len(failed)} file(s) could not be downloaded and "
            f"verified, first: {failed[0]}; rerun `gridpipe download` to retry"
        )
    merged_path = an.merged_path(stage, particle)
    if not merge or stage.merged is None:
        return GatherResult(local_dir, len(report.download.downloaded), failed, extra, None, {}, [])
    from gridpipe.merge import merge_files

    inputs = sorted(p for p in local_dir.glob(pattern) if p.is_file() and p != merged_path)
    if not inputs:
        raise GridpipeError(f"{stage.name}/{particle}: no outputs matching {pattern} in {local_dir} to merge")
    merged = merge_files(inputs, merged_path, strict=strict, overwrite=True)
    skipped = [f"{s.path.name}: {s.reason}" for s in merged.skipped]
    return GatherResult(
        local_dir, len(report.download.downloaded), failed, extra, merged_path, dict(merged.rows), skipped
    )
