"""Run one job of the local backend: stage inputs, run its commands, register its outputs."""

from __future__ import annotations

import os
import shlex
import shutil
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


def _program(argv0: str, work: Path, env: dict[str, str]) -> str | None:
    if "/" in argv0:
        return str(work / argv0) if not argv0.startswith("/") else argv0
    return shutil.which(argv0, path=env.get("PATH", os.defpath))


def _execute(
    argv: tuple[str, ...],
    work: Path,
    env: dict[str, str],
    logs: tuple[int, int],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult | None:
    """Run one command in `work` as its own process group; None when it succeeded."""
    os.write(logs[0], f"$ {shlex.join(argv)}\n".encode())
    program = _program(argv[0], work, env)
    if program is None:
        return JobResult(JobStatus.FAILED, None, f"command not found: {argv[0]!r}")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, logs[0], 1),
        (os.POSIX_SPAWN_DUP2, logs[1], 2),
    ]
    # posix_spawn (much cheaper than fork from a large process) has no working-directory argument before
    # Python 3.13; a runner process runs one job at a time, so changing its own directory is safe.
    os.chdir(work)
    try:
        pid = os.posix_spawn(program, list(argv), env, file_actions=actions, setsid=True)
    except OSError as exc:
        return JobResult(JobStatus.FAILED, None, f"cannot start {argv[0]!r}: {exc.strerror}")
    finally:
        os.chdir("/")
    on_start(pid)
    _, status = os.waitpid(pid, 0)  # the runner's watcher kills the process group when the job is cancelled
    code = os.waitstatus_to_exitcode(status)
    if cancel.is_set():
        return JobResult(JobStatus.KILLED, None, "killed by the user")
    if code < 0:
        return JobResult(
            JobStatus.FAILED, code, f"{PurePosixPath(argv[0]).name} was killed by signal {-code}"
        )
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
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    logs = (os.open(job_dir / "stdout.log", flags, 0o644), os.open(job_dir / "stderr.log", flags, 0o644))
    env = {**os.environ, **spec.env, JOB_ENV_MARK: str(job_id)}
    try:
        return _run(spec, work, storage, env, logs, cancel, on_start)
    finally:
        os.close(logs[0])
        os.close(logs[1])


def _run(
    spec: JobSpec,
    work: Path,
    storage: Storage | None,
    env: dict[str, str],
    logs: tuple[int, int],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult:
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
