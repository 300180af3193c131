"""Run one job of the local backend: stage inputs, run its commands, register its outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.storage.contract import Storage

JOB_ENV_MARK = "GRIDPIPE_LOCAL_JOB_ID"
"""Set in every payload's environment, so a restarted executor can recognise its orphans."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended."""

    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None


def _stage(spec: JobSpec, work: Path, storage: Storage) -> None:
    for source in spec.sandbox:
        shutil.copyfile(source, work / Path(source).name)
    for lfn in spec.inputs:
        storage.get(lfn, work / PurePosixPath(lfn).name)


def _register(spec: JobSpec, work: Path, storage: Storage) -> str | None:
    for lfn in spec.outputs:
        produced = work / PurePosixPath(lfn).name
        if not produced.is_file():
            return f"output {PurePosixPath(lfn).name} was not produced"
    for lfn in spec.outputs:
        storage.put(work / PurePosixPath(lfn).name, lfn)
    return None


def _execute(
    argv: tuple[str, ...],
    work: Path,
    env: dict[str, str],
    logs: tuple[Path, Path],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult | None:
    with logs[0].open("ab") as out, logs[1].open("ab") as err:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=work,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return JobResult(JobStatus.FAILED, None, f"cannot start {argv[0]!r}: {exc.strerror}")
        on_start(proc.pid)
        code = proc.wait()  # the executor kills the process group when the job is cancelled
    if cancel.is_set():
        return JobResult(JobStatus.KILLED, None, "killed by the user")
    if code != 0:
        return JobResult(JobStatus.FAILED, code, f"{PurePosixPath(argv[0]).name} exited with code {code}")
    return None


def run_job(
    job_id: int,
    spec: JobSpec,
    job_dir: Path,
    storage: Storage | None,
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult:
    """Run `spec` in `job_dir/work`; stdout/stderr go to job_dir. Never raises for a job's own failure."""
    work = job_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    logs = (job_dir / "stdout.log", job_dir / "stderr.log")
    env = {**os.environ, **spec.env, JOB_ENV_MARK: str(job_id)}
    try:
        if spec.where == "grid":
            if storage is None:
                return JobResult(JobStatus.FAILED, None, "no storage configured for a grid job")
            _stage(spec, work, storage)
        else:
            for folder in spec.outputs:
                Path(folder).mkdir(parents=True, exist_ok=True)
        for argv in spec.commands:
            if cancel.is_set():
                return JobResult(JobStatus.KILLED, None, "killed by the user")
            failed = _execute(argv, work, env, logs, cancel, on_start)
            if failed is not None:
                return failed
        if spec.where == "grid":
            assert storage is not None
            missing = _register(spec, work, storage)
            if missing:
                return JobResult(JobStatus.FAILED, 0, missing)
    except (GridpipeError, OSError) as exc:
        detail = exc.detail if isinstance(exc, GridpipeError) else f"{type(exc).__name__}: {exc}"
        return JobResult(JobStatus.FAILED, None, detail)
    shutil.rmtree(work, ignore_errors=True)
    return JobResult(JobStatus.DONE, 0, None)
