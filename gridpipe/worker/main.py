"""`python -m gridpipe.worker JOB_FILE [BATCH_FILE]`: run the job a job file describes and write its exit
record beside it. With BATCH_FILE, the job is the one keyed NAME there (`NAME.job.json`, the job file's name:
the job file itself need not exist; the job's files are named after it all the same).

The job's stdout and stderr go to `NAME.stdout.log` and `NAME.stderr.log` beside the job file; it runs in
`NAME.work/` (or in the job file's `work_dir`), which is removed when the job is done and kept when it is
not. SIGTERM or SIGINT stops the running command (its whole process group; SIGKILL after a grace period)
and the job ends as killed. Exit codes: 0 done, 1 failed, 128 + the signal when killed, 2 when there is no
readable job file (then nothing is written).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import threading
import traceback
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType

from gridpipe.core.exceptions import EXIT_FAILED, EXIT_OK, EXIT_USAGE, GridpipeError
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import utcnow
from gridpipe.storage.contract import Storage
from gridpipe.worker.records import (
    ExitRecord,
    JobFile,
    OutputRecord,
    RecordError,
    base_name,
    beside,
    exit_record_path,
    read_batch_job,
    read_job_file,
    write_exit_record,
)
from gridpipe.worker.result import JobResult, failed
from gridpipe.worker.run import run_job
from gridpipe.worker.workspace import NUMBA_CACHE, Workspace

PROGRAM = "gridpipe.worker"
KILL_GRACE_SECONDS = 5.0
USAGE = f"usage: python -m {PROGRAM} JOB_FILE [BATCH_FILE]"


class _Stopper:
    """Turns SIGTERM/SIGINT into a cancel: the running command's group gets SIGTERM, then SIGKILL."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.signal: int | None = None
        self.pid: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def started(self, pid: int) -> None:
        self.pid = pid
        if self.cancel.is_set():
            self._stop(pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = self.signal or signum
        self.cancel.set()
        if self.pid is not None:
            self._stop(self.pid)

    def _stop(self, pid: int) -> None:
        _signal_group(pid, signal.SIGTERM)
        timer = threading.Timer(KILL_GRACE_SECONDS, _signal_group, (pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def open_analysis_storage(analysis: Path) -> Storage:
    """The storage named in configs/grid.yaml of the analysis at `analysis`."""
    from gridpipe.analysis.config import GridConfig
    from gridpipe.analysis.configio import load_model
    from gridpipe.storage.registry import open_storage

    return open_storage(load_model(GridConfig, analysis / "configs" / "grid.yaml"), analysis)


def work_folder(job_file: Path, job: JobFile) -> Path:
    """Where the job of `job_file` runs."""
    if job.work_dir is not None:
        return Path(job.work_dir) / f"gridpipe-{base_name(job_file)}"
    return beside(job_file, ".work")


def run_job_file(job_file: Path, job: JobFile, stopper: _Stopper) -> ExitRecord:
    """Run the job of `job_file` to its end and return its exit record (not yet written)."""
    started = utcnow()
    work = work_folder(job_file, job)
    try:
        shutil.rmtree(work, ignore_errors=True)  # what an earlier try of this job file left
        logs = {stream: beside(job_file, f".{stream}.log") for stream in ("stdout", "stderr")}
        workspace = Workspace(work, logs)
    except OSError as exc:
        return _record(job, failed(f"cannot prepare the work folder {work}: {exc.strerror or exc}"), started)
    try:
        result = _run_in(workspace, job, stopper)
    finally:
        workspace.close()
    if result.status == JobStatus.DONE:
        shutil.rmtree(work, ignore_errors=True)
    elif result.status == JobStatus.KILLED and stopper.signal is not None:
        result = replace(result, reason=f"the job worker got {signal.Signals(stopper.signal).name}")
    return _record(job, result, started)


def _run_in(workspace: Workspace, job: JobFile, stopper: _Stopper) -> JobResult:
    storage: Storage | None = None
    try:
        if job.spec.where == "grid":
            storage = open_analysis_storage(Path(job.analysis))
        env = {"NUMBA_CACHE_DIR": str(workspace.work.parent / NUMBA_CACHE), **os.environ, **job.spec.env}
        return run_job(job.spec, workspace, storage, env, stopper.cancel, stopper.started)
    except GridpipeError as exc:  # the storage cannot be opened
        return failed(exc.detail)
    except Exception as exc:  # a bug of gridpipe's, not of the job: on the job, and whole on stderr
        traceback.print_exc()
        return failed(f"internal error of the job worker: {type(exc).__name__}: {exc}")
    finally:
        if storage is not None:
            storage.close()


def _record(job: JobFile, result: JobResult, started: datetime) -> ExitRecord:
    return ExitRecord(
        job=job.spec.name,
        status=result.status,
        exit_code=result.exit_code,
        reason=result.reason,
        started=started,
        ended=utcnow(),
        host=socket.gethostname(),
        outputs=tuple(OutputRecord.of(info) for info in result.outputs),
    )


def main(argv: list[str]) -> int:
    """Run the job file named in `argv` (or its job in the batch file named next); the process's exit code."""
    if len(argv) not in (1, 2) or any(arg.startswith("-") for arg in argv):
        print(f"{PROGRAM}: error: {USAGE}", file=sys.stderr)
        return EXIT_USAGE
    job_file = Path(argv[0]).absolute()
    try:
        if len(argv) == 2:
            job = read_batch_job(Path(argv[1]), base_name(job_file))
        else:
            job = read_job_file(job_file)
    except RecordError as exc:
        print(f"{PROGRAM}: error: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    stopper = _Stopper()
    stopper.install()
    record = run_job_file(job_file, job, stopper)
    try:
        write_exit_record(exit_record_path(job_file), record)
    except OSError as exc:
        print(f"{PROGRAM}: error: cannot write the exit record of {job_file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if record.status == JobStatus.DONE:
        return EXIT_OK
    print(f"{PROGRAM}: job {job.spec.name} {record.status}: {record.reason}", file=sys.stderr)
    if record.status == JobStatus.KILLED and stopper.signal is not None:
        return 128 + stopper.signal
    return EXIT_FAILED
