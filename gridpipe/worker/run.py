"""What one job does where it runs: stage in, run its commands in order, check and register its outputs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath

from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.payloads.contract import Payload, installed_payload
from gridpipe.storage.contract import Storage
from gridpipe.worker.execute import execute
from gridpipe.worker.result import JobResult, failed, killed
from gridpipe.worker.transfer import make_output_folders, missing_output, produced, register_outputs, stage_in
from gridpipe.worker.workspace import Workspace

NO_STORAGE = "no storage configured for a grid job"
STDERR_TAIL_BYTES = 64 * 1024
"""How much of a failed command's stderr its payload reads to word the failure."""


def run_job(
    spec: JobSpec,
    workspace: Workspace,
    storage: Storage | None,
    env: dict[str, str],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult:
    """Run `spec` in `workspace`; never raises for the job's own failure (nor for a storage's error).

    A grid job gets its inputs staged into the work folder and its outputs checked by its payload, then
    registered from there; a local job reads and writes absolute paths of this file system. The work folder
    is left as the job left it: the caller empties or keeps it.
    """
    try:
        payload = installed_payload(spec.payload)
        if spec.where == "grid":
            if storage is None:
                return failed(NO_STORAGE)
            stage_in(spec, workspace.work, storage)
        else:
            make_output_folders(spec)
        for argv in spec.commands:
            if cancel.is_set():
                return killed()
            stderr_start = workspace.log_size("stderr")
            ended = execute(argv, workspace, env, cancel, on_start)
            if ended is not None:
                return _worded(ended, argv, payload, workspace, stderr_start)
        if spec.where == "grid":
            assert storage is not None
            outputs = produced(spec, workspace.work)
            problem = missing_output(outputs) or _output_problem(payload, outputs)
            if problem:
                return failed(problem, 0)
            return JobResult(JobStatus.DONE, 0, None, register_outputs(outputs, storage))
    except (GridpipeError, OSError) as exc:
        return failed(exc.detail if isinstance(exc, GridpipeError) else f"{type(exc).__name__}: {exc}")
    return JobResult(JobStatus.DONE, 0, None)


def _worded(
    ended: JobResult, argv: tuple[str, ...], payload: Payload | None, workspace: Workspace, stderr_start: int
) -> JobResult:
    """`ended` with the payload's reason for a command's exit code, when it has one."""
    if payload is None or ended.status != JobStatus.FAILED or ended.exit_code is None or ended.exit_code <= 0:
        return ended
    start = max(stderr_start, workspace.log_size("stderr") - STDERR_TAIL_BYTES)
    stderr = workspace.log_since("stderr", start)
    reason = payload.failure_reason(PurePosixPath(argv[0]).name, ended.exit_code, stderr)
    return replace(ended, reason=reason) if reason else ended


def _output_problem(payload: Payload | None, outputs: list[tuple[str, Path]]) -> str | None:
    """The payload's objection to the first output it finds wrong (checked before anything is registered)."""
    if payload is None:
        return None
    return next((p for p in (payload.output_problem(path) for _, path in outputs) if p), None)
