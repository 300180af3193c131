"""`download`, `merge` and `upload-models`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput, open_analysis
from gridpipe.cli.root import app


class MergeModeOption(StrEnum):
    """How `merge` writes its output."""

    copy = "copy"
    vds = "vds"


def _gather(
    analysis_path: Path | None, data_type: str, particles: list[str], options: object, json_output: bool
) -> None:
    from rich.progress import Progress

    from gridpipe.cli.output import console, print_json, styled
    from gridpipe.service.gather import GatherOptions, gather_unit, units_for_data_type

    assert isinstance(options, GatherOptions)
    results = []
    with open_analysis(analysis_path) as an:
        for unit in units_for_data_type(an, data_type, particles or None):
            quiet = json_output or not console().is_terminal
            with Progress(console=console(), transient=True, disable=quiet) as bar:
                task = bar.add_task(f"{unit.stage.name}/{unit.name}", total=None)
                opts = GatherOptions(
                    **{**options.__dict__, "progress": lambda _f, _ok, t=task: bar.advance(t)}
                )
                result = gather_unit(an, unit, opts)
            results.append((unit, result))
            if not json_output:
                done = [f"fetched {result.fetched}"] if result.synced else []
                if result.merged:
                    done.append(
                        f"merged {result.merged_inputs} file(s) into {result.merged.name} "
                        f"({sum(result.rows.values())} rows)"
                    )
                console().print(styled(f"{data_type}/{unit.particle}: {', '.join(done) or 'nothing to do'}"))
                for name in result.extra:
                    console().print(f"  extra local file (not in storage): {name}")
                for skipped in result.skipped:
                    console().print(f"  skipped input: {skipped}")
    if json_output:
        print_json(
            [
                {
                    "data_type": data_type,
                    "particle": u.particle,
                    "local_dir": str(r.local_dir),
                    "fetched": r.fetched,
                    "merged_inputs": r.merged_inputs,
                    "extra": r.extra,
                    "merged": str(r.merged) if r.merged else None,
                    "rows": r.rows,
                    "skipped": r.skipped,
                }
                for u, r in results
            ]
        )


@app.command("download")
def download_cmd(
    data_type: str = typer.Option(
        ...,
        "--data-type",
        help="TRAINING/for_energy_estimation, "
        "TRAINING/for_particle_classification, DL2, ... (a folder below data/).",
    ),
    particle: list[str] = typer.Option([], "--particle", help="Only these particles (repeatable)."),
    no_sync: bool = typer.Option(False, "--no-sync", help="Do not contact storage; merge what is local."),
    no_merge: bool = typer.Option(False, "--no-merge", help="Download and verify only."),
    jobs: int = typer.Option(4, "-j", "--jobs", min=1, max=64, help="Parallel downloads."),
    delete_extra: bool = typer.Option(
        False, "--delete-extra", help="Delete local files that are not in storage."
    ),
    strict: bool = typer.Option(False, "--strict", help="Fail the merge on an empty or corrupt input."),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Download (verified, sync-recovering missing or bad files) and merge one data type."""
    from gridpipe.service.gather import GatherOptions

    options = GatherOptions(
        jobs=jobs, sync=not no_sync, merge=not no_merge, delete_extra=delete_extra, strict=strict
    )
    _gather(analysis_path, data_type, particle, options, json_output)


@app.command("merge")
def merge_cmd(
    data_type: str = typer.Option(..., "--data-type", help="A folder below data/, e.g. DL2."),
    particle: list[str] = typer.Option([], "--particle", help="Only these particles (repeatable)."),
    strict: bool = typer.Option(False, "--strict", help="Fail on an empty or corrupt input."),
    mode: MergeModeOption = typer.Option(
        MergeModeOption.copy,
        "--mode",
        help="copy: one merged file; vds: a virtual-dataset index over the inputs.",
    ),
    remove_inputs: bool = typer.Option(
        False, "--remove-inputs", help="Delete the inputs once the merged file is verified."
    ),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Merge the downloaded HDF5 files of one data type into protopipe's merged names."""
    from gridpipe.service.gather import GatherOptions

    options = GatherOptions(sync=False, strict=strict, mode=mode.value, remove_inputs=remove_inputs)
    _gather(analysis_path, data_type, particle, options, json_output)


@app.command("upload-models")
def upload_models_cmd(
    model: list[str] = typer.Option([], "--model", help="Model folder below estimators/ (repeatable)."),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Upload model files to the grid, replicate them to every upload site and verify each replica."""
    from gridpipe.cli.output import console, print_json
    from gridpipe.service.models import model_stages, upload_stage_outputs

    with open_analysis(analysis_path) as an:
        done = [(stage.name, upload_stage_outputs(an, stage)) for stage in model_stages(an, model or None)]
    if json_output:
        print_json({name: [u.__dict__ for u in files] for name, files in done})
        return
    for name, files in done:
        for item in files:
            console().print(
                f"{name}: {item.lfn} ({item.size} bytes, adler32 {item.adler32}, "
                f"replicas: {', '.join(item.replicas)})"
            )
