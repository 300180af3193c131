"""The `local` backend (embedded default): jobs run as processes on this machine.

Submission queues jobs in `<analysis>/.gridpipe/local/queue.db`; a detached executor runs them with
bounded concurrency, so jobs keep running after `gridpipe submit` returns and any later command
picks up their results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from gridpipe.analysis.config import Strict
from gridpipe.backends.contract import Backend
from gridpipe.backends.local_queue import LocalQueue
from gridpipe.backends.local_setup import LocalBackendSettings, LocalSetup
from gridpipe.backends.local_slot import read_log, slot_log
from gridpipe.backends.local_start import ensure_executor, local_dir_of
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
        """Start the executor unless one runs (`local_start.ensure_executor`)."""
        ensure_executor(self.analysis_path)
