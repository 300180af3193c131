"""The engine's typed errors and run outcomes in the command line's words (flags and commands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridpipe.cli.output import command_line
from gridpipe.core.exceptions import (
    AnalysisNotFoundError,
    DataTypeNotFoundError,
    DownloadFailedError,
    GridpipeError,
    JobDoneError,
    JobNotFoundError,
    ModelsMissingError,
    NoModelFilesError,
    NothingChosenError,
    ParticleNotFoundError,
    RunLockedError,
    StageChoiceError,
    StageNotFoundError,
)

if TYPE_CHECKING:
    from gridpipe.service.orchestrator import RunReport

_CHOOSE = {"resubmit": "--failed", "kill": "--stage NAME or --all"}


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _stage_choice(e: StageChoiceError) -> str:
    if e.output_type is None:
        return "give --output_type TRAINING|DL2 (or --stage NAME)"
    energy = " --estimate-energy" if e.estimate_energy else ""
    found = ", ".join(e.matches) or "none"
    return (
        f"--output_type {e.output_type}{energy} matches {len(e.matches)} stage(s) ({found}); use --stage NAME"
    )


def _not_found(e: AnalysisNotFoundError) -> str:
    if not e.exists:
        return f"--analysis-path {e.start}: no such directory"
    where = f"--analysis-path {e.start}" if e.given else f"the current directory {e.start}"
    return (
        f"{where} is not inside a gridpipe analysis (no {e.marker} found); "
        "run `gridpipe create-analysis NAME` or pass --analysis-path"
    )


_WORDING: dict[type[GridpipeError], Callable[[Any], str]] = {
    StageNotFoundError: lambda e: (
        f"--stage {e.name!r}: no such stage in configs/workflow.yaml; known: {', '.join(e.known)}"
    ),
    StageChoiceError: _stage_choice,
    AnalysisNotFoundError: _not_found,
    NothingChosenError: lambda e: f"name the jobs to {e.action}, or pass {_CHOOSE[e.action]}",
    JobNotFoundError: lambda e: f"{e.detail}; see `gridpipe status --jobs`",
    JobDoneError: lambda e: (
        f"job(s) already done: {_names(e.names)}; `resubmit` runs failed or killed jobs: pass --done to run "
        "done jobs again (later stages that used their outputs are then marked stale and redone by "
        "`gridpipe run`)"
    ),
    RunLockedError: lambda e: (
        (
            f"the gridpipe service (process {e.holder}) drives {e.path}; watch it with `gridpipe status` "
            f"or `gridpipe service status`, or hand it back with `{command_line('gridpipe', 'service', 'pause', e.path)}`"
        )
        if e.by_service
        else (
            f"another gridpipe run (process {e.holder}) is already driving {e.path}; watch it with "
            "`gridpipe status`, or stop it (Ctrl-C) before starting a new one"
        )
    ),
    DownloadFailedError: lambda e: (
        f"{e.where}: {len(e.failures)} file(s) could not be downloaded and verified, first: "
        f"{e.failures[0]}; rerun `gridpipe download` to retry"
    ),
    DataTypeNotFoundError: lambda e: (
        f"--data-type {e.data_type!r}: no stage writes it; known: {', '.join(e.known)}"
    ),
    ParticleNotFoundError: lambda e: (
        f"--particle {', '.join(e.particles)}: not a particle of {e.data_type}; known: {', '.join(e.known)}"
    ),
    ModelsMissingError: lambda e: (
        f"stage '{e.stage}' needs the models of stage '{e.model_stage}', but {e.folder} holds none; "
        "run `gridpipe run`, or build them and run `gridpipe upload-models`"
    ),
    NoModelFilesError: lambda e: f"{e.detail} (`gridpipe run`)",
}


def error_text(exc: GridpipeError) -> str:
    """What the CLI prints for an error: its own wording where it has one, else the error's detail."""
    word = _WORDING.get(type(exc))
    return word(exc) if word is not None else exc.detail


def run_text(report: RunReport) -> str:
    """How `gridpipe run` ended, with the commands that help when it stalled or was stopped."""
    from gridpipe.service.orchestrator import RunOutcome

    if report.outcome is RunOutcome.STALLED:
        return (
            f"stopped: {len(report.failed_for_good)} job(s) failed for good, {len(report.killed)} "
            "killed; fix the cause, then `gridpipe resubmit --failed` and `gridpipe run`"
        )
    if report.outcome is RunOutcome.STOPPED:
        return "stopped; run `gridpipe run` again to resume"
    return report.message
