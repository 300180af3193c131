"""A local runner's slot: a reused workspace (`slots/<n>/work` and two log files) in which the job worker
runs one job after the other.

Reusing it keeps a job's own file-system work down to its payload's files. A failed job's folder is kept
as `jobs/<id>/work` for inspection, and logs too large for the queue are moved to `jobs/<id>/`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from gridpipe.backends.local_queue import Outcome
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import utcnow
from gridpipe.storage.contract import Storage
from gridpipe.worker.run import run_job
from gridpipe.worker.workspace import LOG_STREAMS, NUMBA_CACHE, Workspace

JOB_ENV_MARK = "GRIDPIPE_LOCAL_JOB"
"""Set in every payload's environment to `job_mark(...)`, so a restarted executor can recognise its orphans."""
LOG_INLINE_BYTES = 1 << 20
"""Logs up to this size are kept in the queue; larger ones are moved to `jobs/<id>/<stream>.log`."""
STARTED_MARK = "started"
"""The slot's file holding the id of the job it started last, written before the payload starts (0 after a
claim, before any start): jobs the slot claimed with a higher id never started."""
_MARK_WIDTH = 20


def job_mark(local_dir: Path, job_id: int) -> str:
    """The value of JOB_ENV_MARK for job `job_id` of the queue in `local_dir` (job ids repeat across analyses)."""
    return f"{local_dir}:{job_id}"


def slot_dir(local_dir: Path, number: int) -> Path:
    """The folder of runner slot `number`."""
    return local_dir / "slots" / str(number)


def slot_log(local_dir: Path, number: int, stream: str) -> Path:
    """The live log file `stream` of the job running in slot `number`."""
    return slot_dir(local_dir, number) / f"{stream}.log"


def slot_started(local_dir: Path, number: int) -> int | None:
    """The id of the last job whose payload slot `number` started (0: none of those it holds now); None when
    unknown (no readable mark)."""
    try:
        return int((slot_dir(local_dir, number) / STARTED_MARK).read_bytes())
    except (OSError, ValueError):
        return None


def read_log(path: Path, limit: int | None = None) -> str:
    """A log file's text (its last `limit` characters when given); '' when it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if limit is None else text[-limit:]


class Slot:
    """A runner's workspace, reused job after job."""

    def __init__(self, local_dir: Path, number: int) -> None:
        self.local_dir = local_dir
        root = slot_dir(local_dir, number)
        shutil.rmtree(root, ignore_errors=True)  # whatever a dead runner of this slot left
        logs = {stream: slot_log(local_dir, number, stream) for stream in LOG_STREAMS}
        self.workspace = Workspace(root / "work", logs)
        self._mark = os.open(root / STARTED_MARK, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self.mark_started(0)  # the mark's bytes exist from here on: later marks overwrite them in place
        self._environ = dict(os.environ)  # a runner's environment does not change: copied once
        # numba (ctapipe) caches compiled code in a writable folder shared by the runners, not beside its
        # installed modules (often read-only): compiled once per analysis instead of once per job
        self._environ.setdefault("NUMBA_CACHE_DIR", str(local_dir / NUMBA_CACHE))

    def close(self) -> None:
        """Close the log files."""
        self.workspace.close()
        os.close(self._mark)

    def mark_started(self, job_id: int) -> None:
        """Note that the payload of `job_id` starts now (0: a new claim, nothing of it started yet)."""
        os.pwrite(self._mark, str(job_id).rjust(_MARK_WIDTH).encode(), 0)

    def run(
        self,
        job_id: int,
        spec: JobSpec,
        storage: Storage | None,
        cancel: threading.Event,
        on_start: Callable[[int], None],
    ) -> Outcome:
        """Run `spec` here through the job worker; never raises for a job's own failure. The slot is clean
        again afterwards."""
        workspace = self.workspace
        workspace.reset_logs()
        env = {**self._environ, **spec.env, JOB_ENV_MARK: job_mark(self.local_dir, job_id)}
        self.mark_started(job_id)
        started = utcnow().isoformat()
        result = run_job(spec, workspace, storage, env, cancel, on_start)
        job_dir = self.local_dir / "jobs" / str(job_id)
        if result.status == JobStatus.DONE:
            workspace.empty()
        else:
            workspace.keep(job_dir / "work")  # kept for inspection
        stdout, stderr = (self._take_log(stream, job_dir) for stream in LOG_STREAMS)
        return Outcome(job_id, str(result.status), result.exit_code, result.reason, stdout, stderr, started)

    def _take_log(self, stream: str, job_dir: Path) -> str | None:
        """The log's text, or None after moving a large log to `job_dir`."""
        size = self.workspace.log_size(stream)
        if size <= LOG_INLINE_BYTES:
            return self.workspace.log_text(stream, size)
        job_dir.mkdir(parents=True, exist_ok=True)
        self.workspace.move_log(stream, job_dir / f"{stream}.log")
        return None
