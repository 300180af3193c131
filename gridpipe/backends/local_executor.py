"""The local backend's executor: a detached process that runs queued jobs with bounded concurrency.

At most one executor runs per analysis (an exclusive lock). It forks `workers` runner processes; each
claims one queued job at a time from the queue (an atomic SQLite update that also writes the ledger),
stages it, runs it and records the result, so jobs run in parallel on every core and the bookkeeping
does too. Runners exit when the queue stays empty; the executor then releases the lock, and `gridpipe`
starts a new one whenever jobs are queued and none runs. Started as
`python -m gridpipe.backends.local_executor ANALYSIS_PATH`.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

from gridpipe.backends.local_job import JOB_ENV_MARK, JobResult, run_job
from gridpipe.backends.local_queue import LocalQueue
from gridpipe.core.states import JobStatus

IDLE_EXIT_SECONDS = 2.0
IDLE_POLL_SECONDS = 0.05
CANCEL_POLL_SECONDS = 0.25
KILL_GRACE_SECONDS = 5.0


def try_lock(path: Path) -> int | None:
    """An exclusive non-blocking lock on `path`: the fd, or None when someone holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _orphans(job_ids: set[int]) -> list[int]:
    """Process ids of payloads still running for the given jobs (found by their environment mark)."""
    marks = {f"{JOB_ENV_MARK}={job_id}".encode() for job_id in job_ids}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if environ & marks:
            found.append(int(entry.name))
    return found


def recover_lost(queue: LocalQueue) -> None:
    """Jobs left `running` by an executor that died: stop their payloads, mark them failed."""
    lost = {row.id for row in queue.running()}
    if not lost:
        return
    for pid in _orphans(lost):
        _signal_group(pid, signal.SIGKILL)
    queue.finish(
        [
            (job_id, str(JobStatus.FAILED), None, "lost: the local executor stopped while the job ran")
            for job_id in sorted(lost)
        ]
    )


class _CancelWatch:
    """A runner's watcher thread: while a job runs, stop its payload when someone asks to kill the job."""

    def __init__(self, queue: LocalQueue) -> None:
        self.queue = queue
        self.lock = threading.Lock()
        self.job_id: int | None = None
        self.pid: int | None = None
        self.cancel = threading.Event()
        self.asked: float | None = None
        self.stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def begin(self, job_id: int) -> threading.Event:
        """Watch a new job; returns its cancel event."""
        with self.lock:
            self.job_id, self.pid, self.asked = job_id, None, None
            self.cancel = threading.Event()
            return self.cancel

    def end(self) -> None:
        """The job is over."""
        with self.lock:
            self.job_id = self.pid = None

    def started(self, pid: int) -> None:
        """A payload process of the current job started (its own process group)."""
        with self.lock:
            self.pid = pid
            if self.cancel.is_set():
                _signal_group(pid, signal.SIGTERM)

    def _watch(self) -> None:
        while not self.stop.wait(CANCEL_POLL_SECONDS):
            with self.lock:
                job_id, pid, asked = self.job_id, self.pid, self.asked
            if job_id is None:
                continue
            if asked is None and self.queue.cancel_requested(job_id):
                with self.lock:
                    if self.job_id == job_id:
                        self.asked = time.monotonic()
                        self.cancel.set()
                if pid:
                    _signal_group(pid, signal.SIGTERM)
            elif asked is not None and time.monotonic() - asked > KILL_GRACE_SECONDS and pid:
                _signal_group(pid, signal.SIGKILL)


def _runner(analysis_path: Path) -> None:
    """One runner process: claim a job, run it, record the result; exit after a quiet spell."""
    from gridpipe.backends.local import LocalBackend

    backend = LocalBackend.for_analysis(analysis_path)
    queue = LocalQueue(backend.local_dir)
    storage = None
    idle_since: float | None = None
    watch = _CancelWatch(queue)
    try:
        while True:
            claimed = queue.claim(1, os.getpid())
            if not claimed:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                    return
                time.sleep(IDLE_POLL_SECONDS)
                continue
            idle_since = None
            job_id, spec = claimed[0]
            if spec.where == "grid" and storage is None:
                storage = backend.storage_factory()
            cancel = watch.begin(job_id)
            try:
                result = run_job(
                    job_id, spec, backend.local_dir / "jobs" / str(job_id), storage, cancel, watch.started
                )
            except Exception as exc:  # a bug in gridpipe, not in the job: report it on the job
                result = JobResult(JobStatus.FAILED, None, f"internal error: {type(exc).__name__}: {exc}")
            finally:
                watch.end()
            queue.finish([(job_id, str(result.status), result.exit_code, result.reason)])
    finally:
        watch.stop.set()
        queue.close()


def main(analysis_path: Path) -> int:
    """Executor entry point: one per analysis; exits when idle, re-checking the queue after unlocking."""
    from gridpipe.backends.local import LocalBackend

    backend = LocalBackend.for_analysis(analysis_path)
    lock_path = backend.local_dir / "executor.lock"
    context = multiprocessing.get_context("fork")
    while True:
        fd = try_lock(lock_path)
        if fd is None:
            return 0
        try:
            queue = LocalQueue(backend.local_dir)
            recover_lost(queue)
            queue.close()  # no connection crosses the fork
            runners = [
                context.Process(target=_runner, args=(analysis_path,), daemon=False)
                for _ in range(backend.workers)
            ]
            for runner in runners:
                runner.start()
            for runner in runners:
                runner.join()
        finally:
            os.close(fd)
        queue = LocalQueue(backend.local_dir)
        pending = queue.count("queued")
        queue.close()
        if pending == 0:
            return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
