"""`submit`, `status`, `resubmit`, `kill` and `logs`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput, open_analysis
from gridpipe.cli.root import app


class OutputType(StrEnum):
    """Output types `submit` knows (a stage's output_type)."""

    TRAINING = "TRAINING"
    DL2 = "DL2"
    MODEL = "MODEL"
    PERFORMANCE = "PERFORMANCE"


@app.command("submit")
def submit_cmd(
    output_type: OutputType = typer.Option(
        None,
        "--output_type",
        "--output-type",
        help="Stage output type.",
        case_sensitive=False,
        show_default=False,
    ),
    stage: str = typer.Option(
        None, "--stage", help="Submit this stage (instead of --output_type).", show_default=False
    ),
    estimate_energy: bool = typer.Option(
        False,
        "--estimate-energy",
        "--estimate_energy",
        help="TRAINING for particle classification (energy model applied).",
    ),
    particle: list[str] = typer.Option([], "--particle", help="Only these particles (repeatable)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan; never contact a backend's submit."
    ),
    test: bool = typer.Option(False, "--test", help="Submit exactly one job."),
    max_jobs: int = typer.Option(
        None, "--max-jobs", min=1, help="Submit at most N jobs (default: n_jobs_max).", show_default=False
    ),
    n_file_per_job: int = typer.Option(
        None,
        "--n-file-per-job",
        "-n",
        min=1,
        help="Input files per job (default: grid.yaml).",
        show_default=False,
    ),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Plan jobs of a stage from its input lists and submit them (never twice)."""
    from gridpipe.cli.render import print_plan, print_submit
    from gridpipe.service.jobs import select_stage, submit_stage

    with open_analysis(analysis_path) as an:
        chosen = select_stage(an, stage, output_type.value if output_type else None, estimate_energy)
        outcome = submit_stage(
            an,
            chosen,
            particle or None,
            dry_run=dry_run,
            limit=max_jobs,
            n_file_per_job=n_file_per_job,
            test=test,
        )
        if dry_run:
            print_plan(outcome, json_output, an.backend_of_stage(chosen))
        else:
            print_submit(outcome, json_output)


class ShownState(StrEnum):
    """Job states `status --status` filters on."""

    PLANNED = "planned"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    KILLED = "killed"


@app.command("status")
def status_cmd(
    jobs: bool = typer.Option(
        False, "--jobs", help="Job rows too: the first 50, jobs not done first (see --limit, --all)."
    ),
    limit: int = typer.Option(
        None, "--limit", min=1, help="At most N job rows (implies --jobs).", show_default=False
    ),
    all_jobs: bool = typer.Option(False, "--all", help="Every job row (implies --jobs; streamed)."),
    stage: str = typer.Option(None, "--stage", help="Only jobs of this stage.", show_default=False),
    state: list[ShownState] = typer.Option(
        [], "--status", help="Only jobs in this state (repeatable).", case_sensitive=False
    ),
    units: bool = typer.Option(False, "--units", help="One row per unit, even for a stage with many."),
    no_refresh: bool = typer.Option(False, "--no-refresh", help="Do not ask the backends first."),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Refresh active jobs (one batch call per backend) and show counts per stage and particle.

    `--json` streams every job (or those chosen by --stage, --status, --limit).
    """
    from gridpipe.cli.output import warn
    from gridpipe.cli.render import DEFAULT_JOB_ROWS, print_status
    from gridpipe.service.refresh import refresh_or_explain
    from gridpipe.service.status import JobFilter

    chosen = frozenset(s.value for s in state) or None
    if all_jobs or json_output:
        which = JobFilter(stage, chosen, None if all_jobs else limit)
    else:
        which = JobFilter(stage, chosen, limit or DEFAULT_JOB_ROWS, done_last=True)
    listed = jobs or all_jobs or limit is not None or bool(stage) or bool(state)
    with open_analysis(analysis_path, validated=False) as an:  # validated if a backend is asked
        if not no_refresh:
            problem = refresh_or_explain(an)
            if problem:
                warn(problem)
        print_status(an, with_jobs=listed, json_output=json_output, which=which, all_units=units)


@app.command("resubmit")
def resubmit_cmd(
    names: list[str] = typer.Argument(None, help="Jobs to resubmit.", show_default=False, metavar="JOB"),
    failed: bool = typer.Option(False, "--failed", help="Resubmit every failed or killed job."),
    done: bool = typer.Option(
        False,
        "--done",
        help="Also run named jobs that are done again; later stages that used their outputs become stale "
        "(`run` redoes them).",
    ),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Resubmit failed or killed jobs as new attempts (with a fresh retry budget); done ones with --done."""
    from gridpipe.cli.render import print_resubmit
    from gridpipe.service.jobs import resubmit

    with open_analysis(analysis_path) as an:
        print_resubmit(resubmit(an, names or [], failed=failed, done=done), json_output)


@app.command("kill")
def kill_cmd(
    names: list[str] = typer.Argument(None, help="Jobs to kill.", show_default=False, metavar="JOB"),
    stage: str = typer.Option(
        None, "--stage", help="Kill every active or planned job of this stage.", show_default=False
    ),
    all_jobs: bool = typer.Option(False, "--all", help="Kill every active or planned job."),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Kill jobs (one batch call per backend); planned ones are not submitted."""
    from gridpipe.cli.output import console, print_json
    from gridpipe.service.jobs import kill

    with open_analysis(analysis_path) as an:
        report = kill(an, names or [], stage=stage, all_jobs=all_jobs)
        if json_output:
            print_json({"killed": report.killed, "not_killed": {n: str(s) for n, s in report.ended.items()}})
            return
        console().print(f"killed {len(report.killed)} job(s)")
        for name, status in sorted(report.ended.items()):
            console().print(f"not killed: {name} had already ended ({status})")


@app.command("logs")
def logs_cmd(
    name: str = typer.Argument(..., help="Job name.", metavar="JOB"),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Show the captured output of a job's last attempt (and the stored reason when it captured none)."""
    from gridpipe.cli.output import console, print_json, styled
    from gridpipe.service.jobs import job_logs

    with open_analysis(analysis_path) as an:
        logs = job_logs(an, name)
        if json_output:
            print_json(
                {"name": logs.name, "status": str(logs.status), "reason": logs.reason, "logs": logs.streams}
            )
            return
        out = console()
        for stream, text in logs.streams.items():
            out.rule(stream)
            out.file.write(text)  # verbatim: never wrapped or styled
            if text and not text.endswith("\n"):
                out.file.write("\n")
            out.file.flush()
        if logs.empty:
            why = f": {logs.reason}" if logs.reason else ""
            out.print(styled(f"{name}: no output was captured (status {logs.status}{why})"))


@app.command("report")
def report_cmd(
    path: Path = typer.Argument(
        None,
        help="The analysis (default: the one containing the current directory).",
        file_okay=False,
        show_default=False,
    ),
    output: Path = typer.Option(
        Path("report.html"), "--output", "-o", help="The HTML file to write.", dir_okay=False
    ),
    analysis_path: Path = AnalysisPath,
) -> None:
    """Write a self-contained HTML report (opens offline) and trace.tsv beside it, from the job store."""
    from gridpipe.cli.output import console
    from gridpipe.service.report import write_report

    with open_analysis(path or analysis_path) as an:
        html, trace = write_report(an, output)
    console().print(f"wrote {html} and {trace}")
