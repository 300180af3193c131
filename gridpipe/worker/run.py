"""What one job does where it runs: stage in, run its commands in order, register its outputs."""

from __future__ import annotations

import threading
from collections.abc import Callable

from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.storage.contract import Storage
from gridpipe.worker.execute import execute
from gridpipe.worker.result import JobResult, failed, killed
from gridpipe.worker.transfer import make_output_folders, missing_output, produced, register_outputs, stage_in
from gridpipe.worker.workspace import Workspace

NO_STORAGE = "no storage configured for a grid job"


def run_job(
    spec: JobSpec,
    workspace: Workspace,
    storage: Storage | None,
    env: dict[str, str],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult:
    """Run `spec` in `workspace`; never raises for the job's own failure (nor for a storage's error).

    A grid job gets its inputs staged into the work folder and its outputs registered from there; a local
    job reads and writes absolute paths of this file system. The work folder is left as the job left it:
    the caller empties or keeps it.
    """
    try:
        if spec.where == "grid":
            if storage is None:
                return failed(NO_STORAGE)
            stage_in(spec, workspace.work, storage)
        else:
            make_output_folders(spec)
        for argv in spec.commands:
            if cancel.is_set():
                return killed()
            ended = execute(argv, workspace, env, cancel, on_start)
            if ended is not None:
                return ended
        if spec.where == "grid":
            assert storage is not None
            outputs = produced(spec, workspace.work)
            missing = missing_output(outputs)
            if missing:
                return failed(missing, 0)
            return JobResult(JobStatus.DONE, 0, None, register_outputs(outputs, storage))
    except (GridpipeError, OSError) as exc:
        return failed(exc.detail if isinstance(exc, GridpipeError) else f"{type(exc).__name__}: {exc}")
    return JobResult(JobStatus.DONE, 0, None)
