"""The `local` backend (embedded default): jobs run as processes on this machine.

Submission queues jobs in `<analysis>/.gridpipe/local/queue.db`; a detached executor runs them with
bounded concurrency, so jobs keep running after `gridpipe submit` returns and any later command
picks up their results.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from gridpipe.analysis.config import Strict
from gridpipe.backends.contract import Backend
from gridpipe.backends.local_queue import LocalQueue
from gridpipe.backends.local_setup import EXECUTOR_LOCK, LocalBackendSettings, LocalSetup, local_dir_of
from gridpipe.backends.local_slot import read_log, slot_log
from gridpipe.core.exceptions import ExecutorFailingError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.models import BackendJob, BackendStatus, JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.worker.workspace import LOG_STREAMS

WAIT_STEP_SECONDS = 0.02
_STATUS = {str(s): s for s in JobStatus}

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig
    from gridpipe.storage.contract import Storage


class LocalBackend(Backend):
    """Processes on this machine, `workers` at a time."""

    name: ClassVar[str] = "local"
    settings_model: ClassVar[type[Strict]] = LocalBackendSettings
    poll_interval: ClassVar[float] = 0.3

    def __init__(
        self, analysis_path: Path, workers: int, storage_factory: Callable[[], Storage | None]
    ) -> None:
        self.analysis_path = analysis_path
        self.local_dir = local_dir_of(analysis_path)
        self.workers = workers
        self.storage_factory = storage_factory

    @cached_property
    def queue(self) -> LocalQueue:
        """The queue, opened on first use (the executor forks before it opens its own)."""
        return LocalQueue(self.local_dir)

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Workers from `backend.local.max_workers` (0: number of cores); storage as configured."""
        setup = LocalSetup.from_config(grid, analysis_path)
        return cls(setup.analysis_path, setup.workers, setup.storage_factory)

    def close(self) -> None:
        """Close the queue's database connection if it was opened."""
        queue = self.__dict__.pop("queue", None)
        if queue is not None:
            queue.close()

    @property
    def capacity(self) -> int:
        """A deep queue: the executor already runs only `workers` jobs at once, and each cycle of `run`
        (refresh, submit) is then shared by hundreds of jobs instead of a few."""
        return max(1000, 2 * self.workers)

    def submit(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """Queue the jobs and make sure an executor runs them."""
        ids = self.queue.add(specs)
        self.ensure_running()
        return ids

    def poll(self, backend_ids: Sequence[str]) -> list[BackendStatus]:
        """One query for all given jobs; ids the queue does not know are left out."""
        known = [i for i in backend_ids if i.isascii() and i.isdigit()]
        out = [
            BackendStatus(str(r.id), _STATUS[r.status], "localhost", r.exit_code, r.reason, started=r.started)
            for r in self.queue.rows(known)
        ]
        if any(s.status in (JobStatus.QUEUED, JobStatus.RUNNING) for s in out):
            self.ensure_running()  # a new executor also fails the jobs of one that died as lost
        return out

    def wait(self, at_most: int, timeout: float, stop: threading.Event) -> None:
        """Watch the queue's count of queued and running jobs (a cheap index count) every few ms."""
        deadline = time.monotonic() + timeout
        while self.queue.active_count() > at_most:
            left = deadline - time.monotonic()
            if left <= 0 or stop.wait(min(WAIT_STEP_SECONDS, left)):
                return

    def cancel(self, backend_ids: Sequence[str]) -> None:
        """Queued jobs are killed at once; the executor stops running ones."""
        self.queue.request_cancel(backend_ids)

    def lookup(self, names: Sequence[str]) -> dict[str, list[BackendJob]]:
        """Queued or past jobs under these names."""
        found: dict[str, list[BackendJob]] = {}
        for row in self.queue.by_names(names):
            found.setdefault(row.name, []).append(BackendJob(str(row.id), row.name, JobStatus(row.status)))
        return found

    def logs(self, backend_id: str) -> dict[str, str]:
        """stdout and stderr of the job's commands: live from its slot while it runs, else as recorded."""
        job_id = int(backend_id)
        rows = self.queue.rows([str(job_id)])
        if rows and rows[0].status == JobStatus.RUNNING and rows[0].slot is not None:
            return {name: read_log(slot_log(self.local_dir, rows[0].slot, name)) for name in LOG_STREAMS}
        recorded = self.queue.logs(job_id) or ("", "")
        job_dir = self.local_dir / "jobs" / str(job_id)
        return {
            name: text if text is not None else read_log(job_dir / f"{name}.log")
            for name, text in zip(LOG_STREAMS, recorded, strict=True)
        }

    def ensure_running(self) -> None:
        """Start the executor unless one holds the lock; the lock is handed to the new executor."""
        _reap()
        with held_lock(self.local_dir / EXECUTOR_LOCK, wait=False) as held:
            if held is None:
                return
            _refuse_a_failing_executor(self.local_dir)
            self._start_executor(held)

    def _start_executor(self, held: int) -> None:
        """Start an executor that takes over the lock `held` through its own copy of the descriptor."""
        lock = _above_standard(os.dup(held))
        try:
            log = _above_standard(
                os.open(self.local_dir / "executor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            )
            try:
                pid = os.posix_spawn(
                    sys.executable,
                    [
                        *(sys.executable, "-m", "gridpipe.backends.local_executor"),
                        *(str(self.analysis_path), str(_LOCK_FD)),
                    ],
                    os.environ,
                    file_actions=[
                        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                        (os.POSIX_SPAWN_DUP2, log, 1),
                        (os.POSIX_SPAWN_DUP2, log, 2),
                        (os.POSIX_SPAWN_DUP2, lock, _LOCK_FD),
                    ],
                    setsid=True,
                )
            finally:
                os.close(log)
        finally:
            os.close(lock)  # the executor holds the lock through its own copy of the descriptor
        _spawned[pid] = self.local_dir


_LOCK_FD = 3
"""The descriptor through which a new executor receives the executor lock."""


def _above_standard(fd: int) -> int:
    """`fd` moved to a number above 0-3, so that setting up the executor's 0-3 cannot overwrite it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


_spawned: dict[int, Path] = {}
"""Executors this process started and not yet collected, with their local folder."""
_exits: dict[Path, list[tuple[float, int]]] = {}
"""(time, exit code) of the executors this process started, per local folder, newest last."""
FAILING_STARTS = 3
"""Executors that exited with an error one after the other, each within FAILING_WINDOW_S: stop starting them."""
FAILING_WINDOW_S = 60.0
LOW_SPACE_BYTES = 1 << 20


def _reap() -> None:
    """Collect executors this process started that have exited (no zombies in long runs), noting how."""
    for pid, local_dir in list(_spawned.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            del _spawned[pid]
            exits = _exits.setdefault(local_dir, [])
            exits.append((time.monotonic(), os.waitstatus_to_exitcode(status)))
            del exits[:-FAILING_STARTS]


def _refuse_a_failing_executor(local_dir: Path) -> None:
    """ExecutorFailingError when the last FAILING_STARTS executors of `local_dir` all failed, recently."""
    recent = [code for at, code in _exits.get(local_dir, []) if time.monotonic() - at < FAILING_WINDOW_S]
    if len(recent) < FAILING_STARTS or any(code == 0 for code in recent):
        return
    try:
        space = os.statvfs(local_dir)
        disk_full = space.f_bavail * space.f_frsize < LOW_SPACE_BYTES
    except OSError:
        disk_full = False
    _exits[local_dir] = []  # the next command may try again, after the user has acted
    raise ExecutorFailingError(local_dir, recent[-1], disk_full=disk_full)
