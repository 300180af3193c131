"""`create-analysis`, `check` and `schema`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput, analysis_root
from gridpipe.cli.root import app
from gridpipe.core.exceptions import EXIT_USAGE, UsageError
from gridpipe.core.plugins import Group, available


def _complete(group: Group) -> Callable[[str], list[str]]:
    """Shell completion offers the installed plugins of `group` (read when asked, not at start-up)."""

    def complete(incomplete: str) -> list[str]:
        return [name for name in available(group) if name.startswith(incomplete)]

    return complete


@app.command("create-analysis")
def create_analysis_cmd(
    name: str = typer.Argument(
        None, help="Analysis name: letters, digits, '.', '_', '-'.", show_default=False
    ),
    analysis_name: str = typer.Option(
        None, "--analysis_name", help="Same as NAME (protopipe's flag).", show_default=False
    ),
    analyses_dir: Path = typer.Option(
        Path("."), "--analyses-dir", "--output_path", help="Folder that holds analyses.", file_okay=False
    ),
    grid_home: str = typer.Option(
        None,
        "--grid-home",
        "--GRID-home",
        help="Grid home LFN directory [default: /vo.cta.in2p3.fr/user/<i>/<login>].",
        show_default=False,
    ),
    grid_path: str = typer.Option(
        "cta_analyses",
        "--grid-path-from-home",
        "--GRID-path-from-home",
        help="Path from the grid home to the analyses folder.",
    ),
    backend: str = typer.Option(
        "local",
        help="Where jobs run: an installed backend (a wrong name lists them).",
        autocompletion=_complete(Group.backends),
    ),
    storage: str = typer.Option(
        "local",
        help="Where files live: an installed storage (a wrong name lists them).",
        autocompletion=_complete(Group.storages),
    ),
    payload: str = typer.Option(
        "demo",
        help="What jobs execute: an installed payload (a wrong name lists them).",
        autocompletion=_complete(Group.payloads),
    ),
    workflow: Path = typer.Option(
        None,
        "--workflow",
        help="Workflow YAML replacing the default skeleton.",
        exists=True,
        dir_okay=False,
        show_default=False,
    ),
    templates: Path = typer.Option(
        None,
        "--templates",
        help="Folder of templates replacing gridpipe's own of the same relative name "
        "(e.g. configs/grid.yaml.j2); the ones used are reported.",
        file_okay=False,
        show_default=False,
    ),
    n_file_per_job: int = typer.Option(10, "--n-file-per-job", "-n", help="Input files per job."),
    n_jobs_max: int = typer.Option(-1, "--n-jobs-max", help="Most jobs one submit creates (-1: no limit)."),
    banned_site: list[str] = typer.Option(
        [], "--banned-site", help="Site jobs must not run at (repeatable)."
    ),
    upload_site: list[str] = typer.Option(
        [], "--upload-site", help="Storage element models are replicated to (repeatable)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        "--overwrite-analysis",
        help="Re-render configs and scripts of an existing analysis; data is kept.",
    ),
    json_output: bool = JsonOutput,
) -> None:
    """Create a protopipe-style analysis directory (configs, data folders, scripts)."""
    from gridpipe.analysis.create import CreateRequest, create_analysis, default_grid_home
    from gridpipe.cli.output import console, print_json, styled

    if name and analysis_name and name != analysis_name:
        raise UsageError(f"NAME {name!r} and --analysis_name {analysis_name!r} differ; give one of them")
    chosen = name or analysis_name
    if not chosen:
        raise UsageError("missing the analysis NAME (or --analysis_name)")
    request = CreateRequest(
        name=chosen,
        analyses_dir=analyses_dir,
        grid_home=grid_home or default_grid_home(),
        grid_path=grid_path,
        backend=backend,
        storage=storage,
        payload=payload,
        workflow=workflow.resolve() if workflow else None,
        templates=templates.resolve() if templates else None,
        overwrite=overwrite,
        n_file_per_job=n_file_per_job,
        n_jobs_max=n_jobs_max,
        banned_sites=tuple(banned_site),
        upload_sites=tuple(upload_site),
    )
    result = create_analysis(request)
    if json_output:
        print_json(
            {
                "path": str(result.path),
                "created": result.created,
                "written": result.written,
                "kept": result.kept,
                "overridden_templates": result.overridden,
                "backed_up": result.backed_up,
            }
        )
        return
    verb = "Created" if result.created else "Updated"
    console().print(
        styled(
            f"{verb} analysis ",
            (str(result.path), "bold"),
            f" ({len(result.written)} files written"
            + (f", {len(result.kept)} kept" if result.kept else "")
            + ")",
        )
    )
    for name in result.overridden:
        console().print(f"  template {name}: yours, from {templates}")
    for rel, copy in result.backed_up.items():
        console().print(f"  replaced {rel}, which you had changed; your version is kept as {copy}")
    if result.inputs:
        shown = ", ".join(result.inputs[:4]) + (
            f" and {len(result.inputs) - 4} more" if len(result.inputs) > 4 else ""
        )
        console().print(f"Next: put input LFNs (one per line) in {shown}, then `gridpipe check`.")
    else:
        console().print("Next: `gridpipe check`, then `gridpipe run` (this workflow reads no input list).")


@app.command("check")
def check_cmd(analysis_path: Path = AnalysisPath, json_output: bool = JsonOutput) -> None:
    """Validate an analysis: configs, workflow and input lists."""
    from gridpipe.cli.output import console, print_json, styled
    from gridpipe.service.check import check

    root = analysis_root(analysis_path)
    findings = check(root)
    errors = [f for f in findings if f.level == "error"]
    if json_output:
        print_json(
            {
                "analysis": str(root),
                "ok": not errors,
                "findings": [
                    {"level": f.level, "file": f.file, "line": f.line, "message": f.message} for f in findings
                ],
            }
        )
    else:
        for finding in findings:
            style = "bold red" if finding.level == "error" else "yellow"
            console().print(styled((f"{finding.level}:", style), " ", finding.text()))
        warnings = len(findings) - len(errors)
        summary = f"{root}: {len(errors)} error(s), {warnings} warning(s)"
        console().print(styled((summary, "red" if errors else "green")))
    if errors:
        raise typer.Exit(EXIT_USAGE)


@app.command("schema")
def schema_cmd(
    output_dir: Path = typer.Option(
        Path("."), "--output-dir", "-o", help="Where to write the schemas.", file_okay=False
    ),
) -> None:
    """Write JSON Schemas of the config files (for editor completion)."""
    from gridpipe.analysis.schema import write_schemas
    from gridpipe.cli.output import console

    for path in write_schemas(output_dir):
        console().print(f"wrote {path}")
