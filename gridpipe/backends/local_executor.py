"""The local backend's executor: a detached process that runs queued jobs with bounded concurrency.

At most one executor runs per analysis (an exclusive lock). It exits when the queue stays empty, and
`gridpipe` starts a new one whenever jobs are queued and none runs. Started as
`python -m gridpipe.backends.local_executor ANALYSIS_PATH`.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gridpipe.backends.local_job import JOB_ENV_MARK, JobResult, run_job
from gridpipe.backends.local_queue import LocalQueue
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.storage.contract import Storage

IDLE_EXIT_SECONDS = 2.0
KILL_GRACE_SECONDS = 5.0


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def try_lock(path: Path) -> int | None:
    """An exclusive non-blocking lock on `path`: the fd, or None when someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_our_orphan(pid: int, job_id: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{JOB_ENV_MARK}={job_id}".encode() in environ.split(b"\0")


def recover_lost(queue: LocalQueue) -> None:
    """Jobs left `running` by an executor that died: stop their payloads, mark them failed."""
    lost = []
    for row in queue.running():
        if row.pid and _is_our_orphan(row.pid, row.id):
            try:
                os.killpg(row.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        lost.append(
            (row.id, str(JobStatus.FAILED), None, "lost: the local executor stopped while the job ran")
        )
    if lost:
        queue.finish(lost)


class Executor:
    """Claims queued jobs and runs them in threads; results are written in batches."""

    def __init__(self, local_dir: Path, workers: int, storage_factory: Callable[[], Storage | None]) -> None:
        self.local_dir = local_dir
        self.queue = LocalQueue(local_dir)
        self.workers = workers
        self.prefetch = 2 * workers  # jobs staged and registered while `workers` payloads run
        self.storage_factory = storage_factory
        self.wake = threading.Event()
        self.cancels: dict[int, threading.Event] = {}
        self.running: dict[int, Future[JobResult]] = {}
        self._storage: Storage | None = None
        self._storage_lock = threading.Lock()
        self.slots = threading.Semaphore(workers)
        self._pids: dict[int, int] = {}
        self._new_pids: list[tuple[int, int]] = []
        self._killing: dict[int, float] = {}

    def _started(self, job_id: int, pid: int) -> None:
        with self._storage_lock:
            self._pids[job_id] = pid
            self._new_pids.append((job_id, pid))
        if self.cancels[job_id].is_set():
            _signal_group(pid, signal.SIGTERM)

    def _flush_pids(self) -> None:
        with self._storage_lock:
            fresh, self._new_pids = self._new_pids, []
        if fresh:
            self.queue.set_pids(fresh)

    def _cancel(self) -> None:
        """Ask cancelled jobs' payloads to stop (SIGTERM), then force them (SIGKILL) after a grace time."""
        now = time.monotonic()
        for job_id in self.queue.cancelled_running():
            if job_id in self.cancels and job_id not in self._killing:
                self.cancels[job_id].set()
                self._killing[job_id] = now
                if job_id in self._pids:
                    _signal_group(self._pids[job_id], signal.SIGTERM)
        for job_id, since in list(self._killing.items()):
            if job_id not in self.running:
                del self._killing[job_id]
            elif now - since > KILL_GRACE_SECONDS and job_id in self._pids:
                _signal_group(self._pids[job_id], signal.SIGKILL)

    def _shared_storage(self) -> Storage | None:
        """One storage for every job thread (storages open a connection per operation)."""
        with self._storage_lock:
            if self._storage is None:
                self._storage = self.storage_factory()
            return self._storage

    def _job(self, job_id: int, spec: JobSpec) -> JobResult:
        try:
            storage = self._shared_storage() if spec.where == "grid" else None
            return run_job(
                job_id,
                spec,
                self.local_dir / "jobs" / str(job_id),
                storage,
                self.cancels[job_id],
                lambda pid: self._started(job_id, pid),
                self.slots,
            )
        finally:
            self.wake.set()

    def _collect(self) -> None:
        finished = [(i, f) for i, f in self.running.items() if f.done()]
        results = []
        for job_id, future in finished:
            try:
                result = future.result()
            except Exception as exc:  # a bug in gridpipe, not in the job: report it on the job
                result = JobResult(JobStatus.FAILED, None, f"internal error: {type(exc).__name__}: {exc}")
            results.append((job_id, str(result.status), result.exit_code, result.reason))
            del self.running[job_id]
            self.cancels.pop(job_id, None)
            self._pids.pop(job_id, None)
        if results:
            self.queue.finish(results)

    def serve(self, pool: ThreadPoolExecutor) -> None:
        """Run until the queue has been empty for IDLE_EXIT_SECONDS."""
        idle_since: float | None = None
        while True:
            self._collect()
            self._flush_pids()
            self._cancel()
            for job_id, spec in self.queue.claim(self.prefetch - len(self.running), os.getpid()):
                self.cancels[job_id] = threading.Event()
                self.running[job_id] = pool.submit(self._job, job_id, spec)
            if self.running:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                return
            self.wake.wait(0.2)
            self.wake.clear()


def main(analysis_path: Path) -> int:
    """Executor entry point: one per analysis; exits when idle, re-checking the queue after unlocking."""
    from gridpipe.backends.local import LocalBackend

    backend = LocalBackend.for_analysis(analysis_path)
    lock_path = backend.local_dir / "executor.lock"
    while True:
        fd = try_lock(lock_path)
        if fd is None:
            return 0
        executor = Executor(backend.local_dir, backend.workers, backend.storage_factory)
        try:
            recover_lost(executor.queue)
            with ThreadPoolExecutor(max_workers=executor.prefetch, thread_name_prefix="job") as pool:
                executor.serve(pool)
        finally:
            os.close(fd)
        if executor.queue.count("queued") == 0:
            executor.queue.close()
            return 0
        executor.queue.close()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
