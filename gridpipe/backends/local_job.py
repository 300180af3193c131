"""Run one job of the local backend in a runner's slot: stage inputs, run its commands, register outputs.

A slot is a runner's reusable folder (`slots/<n>/`): `work/`, where the payload runs, and the two log
files its stdout and stderr go to. Reusing it keeps a job's own file-system work down to its payload's
files; the runner records the logs with the job's result. A failed job's folder is kept as
`jobs/<id>/work` for inspection, and logs too large for the queue are moved to `jobs/<id>/`.
"""

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

JOB_ENV_MARK = "GRIDPIPE_LOCAL_JOB"
"""Set in every payload's environment to `job_mark(...)`, so a restarted executor can recognise its orphans."""
LOG_STREAMS = ("stdout", "stderr")
LOG_INLINE_BYTES = 1 << 20
"""Logs up to this size are kept in the queue; larger ones are moved to `jobs/<id>/<stream>.log`."""


def job_mark(local_dir: Path, job_id: int) -> str:
    """The value of JOB_ENV_MARK for job `job_id` of the queue in `local_dir` (job ids repeat across analyses)."""
    return f"{local_dir}:{job_id}"


@dataclass(frozen=True)
class JobResult:
    """How a job ended, and its logs (None: moved to `jobs/<id>/` because they are large)."""

    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None
    stdout: str | None = ""
    stderr: str | None = ""


def slot_dir(local_dir: Path, number: int) -> Path:
    """The folder of runner slot `number`."""
    return local_dir / "slots" / str(number)


def slot_log(local_dir: Path, number: int, stream: str) -> Path:
    """The live log file `stream` of the job running in slot `number`."""
    return slot_dir(local_dir, number) / f"{stream}.log"


def read_log(path: Path, limit: int | None = None) -> str:
    """A log file's text (its last `limit` characters when given); '' when it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if limit is None else text[-limit:]


class Slot:
    """A runner's folder: `work/` and the two log files, reused job after job."""

    def __init__(self, local_dir: Path, number: int) -> None:
        self.local_dir = local_dir
        self.number = number
        self.root = slot_dir(local_dir, number)
        self.work = self.root / "work"
        shutil.rmtree(self.root, ignore_errors=True)  # whatever a dead runner of this slot left
        self.work.mkdir(parents=True)
        self.logs = {name: self._open_log(name) for name in LOG_STREAMS}
        self._programs: dict[tuple[str, str], str | None] = {}
        self._environ = dict(os.environ)  # a runner's environment does not change: copied once

    def close(self) -> None:
        """Close the log files."""
        for fd in self.logs.values():
            os.close(fd)

    def log_path(self, stream: str) -> Path:
        """The live log file of the job running in this slot."""
        return slot_log(self.local_dir, self.number, stream)

    def _open_log(self, stream: str) -> int:
        return os.open(self.log_path(stream), os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)

    def program(self, argv0: str, env: dict[str, str]) -> str | None:
        """The executable `argv0` names: relative to the job folder, absolute, or found on PATH (cached)."""
        if "/" in argv0:
            return argv0 if argv0.startswith("/") else str(self.work / argv0)
        key = (argv0, env.get("PATH", os.defpath))
        if key not in self._programs:
            self._programs[key] = shutil.which(argv0, path=key[1])
        return self._programs[key]

    def run(
        self,
        job_id: int,
        spec: JobSpec,
        storage: Storage | None,
        cancel: threading.Event,
        on_start: Callable[[int], None],
    ) -> JobResult:
        """Run `spec` here; never raises for a job's own failure. The slot is clean again afterwards."""
        for fd in self.logs.values():
            os.ftruncate(fd, 0)
        env = {**self._environ, **spec.env, JOB_ENV_MARK: job_mark(self.local_dir, job_id)}
        result = _run(spec, self, storage, env, cancel, on_start)
        job_dir = self.local_dir / "jobs" / str(job_id)
        if result.status == JobStatus.DONE:
            _empty(self.work)
        else:
            job_dir.mkdir(parents=True, exist_ok=True)
            os.replace(self.work, job_dir / "work")  # kept for inspection
            self.work.mkdir()
        stdout, stderr = (self._take_log(name, job_dir) for name in LOG_STREAMS)
        return JobResult(result.status, result.exit_code, result.reason, stdout, stderr)

    def _take_log(self, stream: str, job_dir: Path) -> str | None:
        """The log's text, or None after moving a large log to `job_dir` (a fresh file takes its place)."""
        fd = self.logs[stream]
        size = os.fstat(fd).st_size
        if size <= LOG_INLINE_BYTES:
            return os.pread(fd, size, 0).decode(errors="replace")
        job_dir.mkdir(parents=True, exist_ok=True)
        os.replace(self.log_path(stream), job_dir / f"{stream}.log")
        os.close(fd)
        self.logs[stream] = self._open_log(stream)
        return None


def _empty(folder: Path) -> None:
    """Remove everything inside `folder` (usually a few files: a scandir and an unlink each)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)


def _stage(spec: JobSpec, work: Path, storage: Storage) -> None:
    for source in spec.sandbox:
        shutil.copyfile(source, work / Path(source).name)
    for lfn in spec.inputs:
        storage.get(lfn, work / PurePosixPath(lfn).name)


def _register(spec: JobSpec, work: Path, storage: Storage) -> str | None:
    names = [PurePosixPath(lfn).name for lfn in spec.outputs]
    for name in names:
        if not os.path.isfile(work / name):
            return f"output {name} was not produced"
    for lfn, name in zip(spec.outputs, names, strict=True):
        storage.put(work / name, lfn, move=True)
    return None


def _execute(
    argv: tuple[str, ...],
    slot: Slot,
    env: dict[str, str],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult | None:
    """Run one command in the slot's work folder as its own process group; None when it succeeded."""
    os.write(slot.logs["stdout"], f"$ {shlex.join(argv)}\n".encode())
    program = slot.program(argv[0], env)
    if program is None:
        return JobResult(JobStatus.FAILED, None, f"command not found: {argv[0]!r}")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, slot.logs["stdout"], 1),
        (os.POSIX_SPAWN_DUP2, slot.logs["stderr"], 2),
    ]
    # posix_spawn (much cheaper than fork from a large process) has no working-directory argument before
    # Python 3.13; a runner process runs one job at a time, so changing its own directory is safe.
    os.chdir(slot.work)
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


def _run(
    spec: JobSpec,
    slot: Slot,
    storage: Storage | None,
    env: dict[str, str],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult:
    try:
        if spec.where == "grid":
            if storage is None:
                return JobResult(JobStatus.FAILED, None, "no storage configured for a grid job")
            _stage(spec, slot.work, storage)
        else:
            for folder in spec.outputs:
                Path(folder).mkdir(parents=True, exist_ok=True)
        for argv in spec.commands:
            if cancel.is_set():
                return JobResult(JobStatus.KILLED, None, "killed by the user")
            failed = _execute(argv, slot, env, cancel, on_start)
            if failed is not None:
                return failed
        if spec.where == "grid":
            assert storage is not None
            missing = _register(spec, slot.work, storage)
            if missing:
                return JobResult(JobStatus.FAILED, 0, missing)
    except (GridpipeError, OSError) as exc:
        detail = exc.detail if isinstance(exc, GridpipeError) else f"{type(exc).__name__}: {exc}"
        return JobResult(JobStatus.FAILED, None, detail)
    return JobResult(JobStatus.DONE, 0, None)
