"""`run` (the orchestrator in the foreground) and `demo` (the README's main job)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gridpipe.cli.options import AnalysisPath, JsonOutput, open_analysis
from gridpipe.cli.root import app, state
from gridpipe.core.exceptions import EXIT_FAILED, GridpipeError, UsageError

if TYPE_CHECKING:
    from gridpipe.service.context import Analysis


def _drive(
    an: Analysis,
    max_active: int | None,
    max_attempts: int | None,
    poll: float | None,
    json_output: bool = False,
) -> bool:
    an.backend.ensure_running()  # the local executor starts up while the engine's modules load
    from gridpipe.cli.messages import run_text
    from gridpipe.cli.output import command_line, console, err_console, print_json, styled
    from gridpipe.cli.render import print_status
    from gridpipe.service.orchestrator import Orchestrator, run_options

    with an:
        options = run_options(an, max_active, max_attempts, poll)
        out = err_console() if json_output else console()  # with --json, stdout holds only the JSON
        orchestrator = Orchestrator(an, options, notify=lambda msg: out.print(styled(("·", "dim"), " ", msg)))
        stop = threading.Event()
        try:
            report = orchestrator.run(stop)
        except KeyboardInterrupt:
            stop.set()
            out.print(
                styled(("stopped", "yellow"), ": jobs already submitted keep running; `gridpipe run` resumes")
            )
            state["interrupt_said"] = True  # that was the one line about Ctrl-C
            raise
        if json_output:
            from gridpipe.service.status import stage_counts, stale_units

            print_json(
                {
                    "outcome": str(report.outcome),
                    "complete": report.complete,
                    "message": run_text(report),
                    "failed_for_good": report.failed_for_good,
                    "killed": report.killed,
                    "stages": stage_counts(an),
                    "stale": stale_units(an),
                }
            )
            return report.complete
        print_status(an, with_jobs=False, json_output=False)
        style = "green" if report.complete else "red"
        out.print(styled((run_text(report), style)))
        for name in report.failed_for_good[:20]:
            out.print(f"  failed: {name}  (`{command_line('gridpipe', 'logs', name)}`)")
        return report.complete


def _start_local_executor(analysis_path: Path | None) -> None:
    """With the local backend, start its executor before the configs are validated and the engine's modules
    load (about 0.1 s), so that it is ready when the first jobs are queued. The backend's name is read as
    grid.yaml gives it; whatever is wrong with the files, validating them next says so (and an executor
    started for nothing exits)."""
    from gridpipe.analysis.glance import glance
    from gridpipe.backends.local_start import ensure_executor
    from gridpipe.cli.options import analysis_root

    try:
        root = analysis_root(analysis_path)
        seen = glance(root)
        if seen is not None and seen.backend == "local":
            ensure_executor(root)
    except (GridpipeError, OSError):
        return  # only a head start: `run` starts it again where it can, or says why it cannot


@app.command("run")
def run_cmd(
    max_active: int = typer.Option(
        None, "--max-active", min=1, help="Most jobs active at once.", show_default=False
    ),
    max_attempts: int = typer.Option(
        None, "--max-attempts", min=1, help="Submissions of a job before it fails.", show_default=False
    ),
    poll_interval: float = typer.Option(
        None, "--poll-interval", min=0.05, help="Seconds between refreshes.", show_default=False
    ),
    detach: bool = typer.Option(
        False, "--detach", help="Hand the analysis to the background service and return at once."
    ),
    analysis_path: Path = AnalysisPath,
    json_output: bool = JsonOutput,
) -> None:
    """Drive the analysis to the end: submit, refresh, retry, gather and chain stages."""
    if detach:
        from gridpipe.cli.options import analysis_root
        from gridpipe.cli.output import console
        from gridpipe.client import Client

        with Client() as client:
            added = client.add(
                analysis_root(analysis_path),
                max_active=max_active,
                max_attempts=max_attempts,
                poll_interval=poll_interval,
            )
        console().print(
            f"the gridpipe service drives {added['path']} (id {added['id']}); "
            "follow it with `gridpipe status` or `gridpipe service status`"
        )
        return
    _start_local_executor(analysis_path)
    if not _drive(open_analysis(analysis_path), max_active, max_attempts, poll_interval, json_output):
        raise typer.Exit(EXIT_FAILED)


DEMO_POLL_SECONDS = 1.0
"""How often the demo asks a batch backend about its few jobs (a real analysis uses the backend's own)."""


@app.command("demo")
def demo_cmd(
    directory: Path = typer.Argument(
        Path("gridpipe-demo"), help="Folder for the demo analysis.", file_okay=False
    ),
    backend: str = typer.Option(
        None,
        "--backend",
        help="Where its jobs run: local (default) or a batch backend such as slurm, to see that your "
        "cluster works with gridpipe.",
        show_default=False,
    ),
    payload: str = typer.Option(
        "demo",
        "--payload",
        help="demo (gridpipe's toy analysis, no extra software) or ctapipe (ctapipe's real tools on "
        'synthetic events, to the IRFs; needs pip install "gridpipe[ctapipe]").',
    ),
) -> None:
    """Create a demo analysis with synthetic data and run the whole chain (on this machine by default)."""
    import time

    from gridpipe.cli.output import console, styled
    from gridpipe.service.context import Analysis
    from gridpipe.service.demo import prepare_demo

    started = time.monotonic()
    if payload == "ctapipe":
        _ctapipe_demo(directory, backend, started)
        return
    if payload != "demo":
        raise UsageError(f"--payload {payload!r} is not one of: demo, ctapipe")
    path, created = prepare_demo(directory, backend=backend)
    out = console()
    out.print(styled(("Created" if created else "Resuming") + " demo analysis ", (str(path), "bold")))
    ok = _drive(Analysis.open(path), None, None, None if backend in (None, "local") else DEMO_POLL_SECONDS)
    results = {
        "merged DL2 tables": path / "data" / "DL2",
        "models": path / "estimators",
        "DL3 and plot": path / "data" / "DL3" / "performance.png",
    }
    _print_results(path, time.monotonic() - started, ok, results)


def _ctapipe_demo(directory: Path, backend: str | None, started: float) -> None:
    """`demo --payload ctapipe`: the real ctapipe chain on synthetic events, to the IRF file and its plot."""
    import time

    from gridpipe.cli.output import console, styled
    from gridpipe.service.context import Analysis
    from gridpipe.service.demo_ctapipe import prepare_ctapipe_demo

    if backend not in (None, "local"):
        raise UsageError("the ctapipe demo runs on the local backend; leave out --backend")
    out = console()
    out.print(styled(("Making synthetic ctapipe event files (a toy array, offline) ...", "dim")))
    path, created = prepare_ctapipe_demo(directory)
    out.print(styled(("Created" if created else "Resuming") + " ctapipe demo analysis ", (str(path), "bold")))
    ok = _drive(Analysis.open(path), None, None, None)
    dl3 = path / "data" / "DL3"
    results = {
        "IRF (GADF)": dl3 / "irf.fits.gz",
        "benchmarks": dl3 / "benchmarks.fits.gz",
        "plot": dl3 / "irf.png",
        "cuts": dl3 / "cuts.fits",
        "models": path / "estimators",
        "DL2 with models": path / "data" / "DL2",
    }
    _print_results(path, time.monotonic() - started, ok, results)


def _print_results(path: Path, seconds: float, ok: bool, results: dict[str, Path]) -> None:
    """A demo's closing lines: where each result is, "not made" for one that does not exist (a failed
    stage's), and exit code EXIT_FAILED when the chain did not finish."""
    from gridpipe.cli.output import command_line, console

    out = console()
    out.print(f"{'Finished' if ok else 'Stopped'} after {seconds:.0f} s. Results:")
    for label, where in results.items():
        made = where.is_file() or (where.is_dir() and any(where.iterdir()))
        out.print(f"  {label:<18} {where}" + ("" if made else "  (not made)"))
    out.print(f"  {'job status':<18} {command_line('gridpipe', 'status', '-a', path)}")
    if not ok:
        raise typer.Exit(EXIT_FAILED)
