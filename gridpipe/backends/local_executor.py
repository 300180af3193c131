"""The local backend's executor: a detached process that runs queued jobs with bounded concurrency.

At most one executor runs per analysis (an exclusive lock). It forks `workers` runner processes; each
claims queued jobs from the queue (an atomic SQLite update that also writes the ledger; several at once
while they are short), stages each, runs it and records the results, so jobs run in parallel on every core
and the bookkeeping does too. Runners exit when the queue stays empty; the executor then releases the lock,
and `gridpipe` starts a new one whenever jobs are queued and none runs. Started as
`python -m gridpipe.backends.local_executor ANALYSIS_PATH`.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gridpipe.backends.local_queue import LocalQueue, Outcome
from gridpipe.backends.local_setup import LocalSetup
from gridpipe.backends.local_slot import (
    JOB_ENV_MARK,
    LOG_INLINE_BYTES,
    Slot,
    job_mark,
    read_log,
    slot_log,
    slot_started,
)
from gridpipe.backends.local_start import EXECUTOR_LOCK
from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import utcnow
from gridpipe.worker.workspace import LOG_STREAMS

if TYPE_CHECKING:
    from gridpipe.core.models import JobSpec
    from gridpipe.storage.contract import Storage

IDLE_EXIT_SECONDS = 2.0
IDLE_POLL_SECONDS = 0.02
"""An idle runner looks for a queued job this often (one indexed query): the first jobs of a submission start
within 20 ms; runners exit after IDLE_EXIT_SECONDS without work."""
BATCH_MAX = 8
SHORT_JOB_SECONDS = 0.01
"""While its jobs take less than this each, a runner claims up to BATCH_MAX queued jobs at once: one queue
transaction for several short jobs instead of one each (it pays off only for jobs of a few milliseconds, and a
runner holding a batch near the end of a run makes the others wait at most BATCH_MAX - 1 such jobs). A longer
job ends the batch: the jobs claimed after it go back to the queue, for any runner, and the runner claims one
job at a time again."""
CANCEL_POLL_SECONDS = 0.25
KILL_GRACE_SECONDS = 5.0
MAX_RUNNER_REPLACEMENTS = 8
RUNNERS_DIE = "the local backend's runner processes keep dying; see .gridpipe/local/executor.log"


@contextmanager
def _executor_lock(path: Path, handed: int | None) -> Iterator[int | None]:
    """The executor lock for a round: the descriptor handed over by the starter, else taken here (None when
    another executor holds it)."""
    if handed is None:
        with held_lock(path, wait=False) as fd:
            yield fd
        return
    try:
        yield handed
    finally:
        os.close(handed)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _orphans(local_dir: Path, job_ids: set[int]) -> list[int]:
    """Process ids of payloads still running for the given jobs of the queue in `local_dir` (found by their
    environment mark)."""
    marks = {f"{JOB_ENV_MARK}={job_mark(local_dir, job_id)}".encode() for job_id in job_ids}
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


def recover_lost(queue: LocalQueue, local_dir: Path, runner_pid: int | None = None) -> None:
    """Jobs left `running` by a runner (or a whole executor) that died: those whose payload never started go
    back to the queue; the others are failed, their payloads stopped, what their slots' logs hold kept."""
    held = queue.running(runner_pid)
    if not held:
        return
    marks = {row.slot: slot_started(local_dir, row.slot) for row in held if row.slot is not None}
    unstarted = {row.id for row in held if _never_started(row.id, marks.get(row.slot))}
    lost = [row for row in held if row.id not in unstarted]
    queue.requeue(sorted(unstarted))
    if not lost:
        return
    for pid in _orphans(local_dir, {row.id for row in lost}):
        _signal_group(pid, signal.SIGKILL)
    who = "the local executor" if runner_pid is None else f"the local runner process {runner_pid}"
    reason = f"lost: {who} stopped while the job ran"
    queue.finish(
        [
            Outcome(row.id, str(JobStatus.FAILED), None, reason, *_slot_logs(local_dir, row.slot))
            for row in lost
        ]
    )


def _never_started(job_id: int, mark: int | None) -> bool:
    """Whether a job its slot holds never started: a slot runs the jobs it claimed in id order and marks each
    before its payload starts."""
    return mark is not None and job_id > mark


def _slot_logs(local_dir: Path, slot: int | None) -> tuple[str, str]:
    if slot is None:
        return "", ""
    stdout, stderr = (read_log(slot_log(local_dir, slot, stream), LOG_INLINE_BYTES) for stream in LOG_STREAMS)
    return stdout, stderr


class _Watch:
    """A runner's watcher thread: while a job runs, stop its payload when someone asks to kill the job, and
    once it has run longer than a short job, give the jobs claimed with it back to the queue."""

    def __init__(self, local_dir: Path) -> None:
        self.local_dir = local_dir
        self.lock = threading.Lock()
        self.held: list[int] = []
        """Jobs claimed in the runner's current batch that it has not started."""
        self.began = 0.0
        self.job_id: int | None = None
        self.pid: int | None = None
        self.cancel = threading.Event()
        self.asked: float | None = None
        self.stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def hold(self, job_ids: list[int]) -> None:
        """The jobs of a new batch, other than its first, not started yet."""
        with self.lock:
            self.held = job_ids

    def take(self, job_id: int) -> bool:
        """Whether the held job `job_id` is still the runner's to start (not given back meanwhile)."""
        with self.lock:
            if job_id not in self.held:
                return False
            self.held.remove(job_id)
            return True

    def give_back(self) -> list[int]:
        """The held jobs, for the runner to give back itself."""
        with self.lock:
            held, self.held = self.held, []
            return held

    def begin(self, job_id: int) -> threading.Event:
        """Watch a new job; returns its cancel event."""
        with self.lock:
            self.job_id, self.pid, self.asked = job_id, None, None
            self.began = time.monotonic()
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

    def _requeue_held(self, queue: LocalQueue) -> None:
        """Give the held jobs back to the queue (under the lock: the runner cannot take one meanwhile); if
        the queue cannot be written, the runner keeps them and runs them later."""
        try:
            queue.requeue(self.held)
        except (GridpipeError, sqlite3.Error):
            _log_traceback("giving back the jobs claimed with a long one")
            return
        self.held = []

    def _watch(self) -> None:
        queue = LocalQueue(self.local_dir)  # its own connection: SQLite connections are not shared by threads
        try:
            self._loop(queue)
        finally:
            queue.close()

    def _loop(self, queue: LocalQueue) -> None:
        while not self.stop.wait(CANCEL_POLL_SECONDS):
            with self.lock:
                job_id, pid, asked = self.job_id, self.pid, self.asked
                if self.held and job_id is not None and time.monotonic() - self.began > SHORT_JOB_SECONDS:
                    self._requeue_held(queue)
            if job_id is None:
                continue
            if asked is None and queue.cancel_requested(job_id):
                with self.lock:
                    if self.job_id == job_id:
                        self.asked = time.monotonic()
                        self.cancel.set()
                if pid:
                    _signal_group(pid, signal.SIGTERM)
            elif asked is not None and time.monotonic() - asked > KILL_GRACE_SECONDS and pid:
                _signal_group(pid, signal.SIGKILL)


def _runner(setup: LocalSetup, number: int) -> None:
    """One runner process in slot `number` (forked: the executor's setup is its own): claim jobs, run them,
    record them with the next claim; exit after a quiet spell."""
    queue = LocalQueue(setup.local_dir)
    slot = Slot(setup.local_dir, number)
    watch = _Watch(setup.local_dir)
    context = _RunnerContext(setup, slot, watch)
    idle_since: float | None = None
    finished: list[Outcome] = []
    unstarted: list[int] = []
    limit = 1
    try:
        while True:
            claimed = queue.finish_and_claim(finished, limit, os.getpid(), number, unstarted)
            finished, unstarted = [], []
            if not claimed:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                    return
                time.sleep(IDLE_POLL_SECONDS)
                continue
            idle_since = None
            slot.mark_started(0)
            watch.hold([job_id for job_id, _ in claimed[1:]])
            limit = BATCH_MAX
            for index, (job_id, spec) in enumerate(claimed):
                if index and not watch.take(job_id):
                    continue  # the watch gave it back to the queue while a long job ran
                if index and queue.cancel_requested(job_id):
                    unstarted.append(job_id)  # killed before it started
                    continue
                began = time.monotonic()
                finished.append(context.run(job_id, spec))
                if time.monotonic() - began > SHORT_JOB_SECONDS:
                    limit = 1
                    unstarted += watch.give_back()
                    break
    finally:
        watch.stop.set()
        slot.close()
        queue.close()


class _RunnerContext:
    """What a runner needs to run one job: its slot, its cancel watch, and the storage (opened on first use)."""

    def __init__(self, setup: LocalSetup, slot: Slot, watch: _Watch) -> None:
        self.setup = setup
        self.slot = slot
        self.watch = watch
        self.storage: Storage | None = None

    def run(self, job_id: int, spec: JobSpec) -> Outcome:
        """Run the job in the slot; how it ended (never raises)."""
        cancel = self.watch.begin(job_id)
        try:
            if spec.where == "grid" and self.storage is None:
                self.storage = self.setup.storage_factory()
            return self.slot.run(job_id, spec, self.storage, cancel, self.watch.started)
        except GridpipeError as exc:  # e.g. the storage cannot be opened
            return Outcome(job_id, str(JobStatus.FAILED), None, exc.detail)
        except Exception:  # a bug in gridpipe, not in the job: report it on the job and in the log
            _log_traceback(f"job {job_id}")
            return Outcome(
                job_id, str(JobStatus.FAILED), None, "internal error of the local runner; see executor.log"
            )
        finally:
            self.watch.end()


def _log_traceback(what: str) -> None:
    """Write the current exception's traceback to the executor log (stderr), whole, in one write."""
    text = f"{utcnow().isoformat()} {what}: internal error\n{traceback.format_exc()}"
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass


def _supervise(context: multiprocessing.context.BaseContext, setup: LocalSetup) -> bool:
    """Run `workers` runners; a runner that dies has its job failed as lost and is replaced, a few times.

    Returns False when runners kept dying (more than MAX_RUNNER_REPLACEMENTS): the executor then gives up.
    """
    local_dir = setup.local_dir
    runners = {_start_runner(context, setup, number): number for number in range(setup.workers)}
    replacements = MAX_RUNNER_REPLACEMENTS
    while runners:
        multiprocessing.connection.wait([r.sentinel for r in runners])
        for runner in [r for r in runners if not r.is_alive()]:
            number = runners.pop(runner)
            runner.join()
            if runner.exitcode == 0:
                continue
            os.write(
                2, f"{utcnow().isoformat()} runner {runner.pid} died (exit {runner.exitcode})\n".encode()
            )
            queue = LocalQueue(local_dir)
            try:
                assert runner.pid is not None
                recover_lost(queue, local_dir, runner.pid)
                pending = queue.count("queued")
            finally:
                queue.close()
            if not pending:
                continue
            if replacements == 0:
                _stop(runners)
                return False
            replacements -= 1
            runners[_start_runner(context, setup, number)] = number
    return True


def _stop(runners: dict[multiprocessing.Process, int]) -> None:
    """Stop the remaining runners (SIGTERM); the caller fails the jobs they held."""
    for runner in runners:
        runner.terminate()
    for runner in runners:
        runner.join()


def _start_runner(
    context: multiprocessing.context.BaseContext, setup: LocalSetup, number: int
) -> multiprocessing.Process:
    runner = context.Process(target=_runner, args=(setup, number), daemon=False)  # type: ignore[attr-defined]
    runner.start()
    return runner


def main(analysis_path: Path, lock_fd: int | None = None) -> int:
    """Executor entry point: one per analysis; exits when idle, re-checking the queue after unlocking.

    `lock_fd` is the executor lock already taken by the process that started this one (handed over, so
    no second executor can be started while this one is still starting up).
    """
    if lock_fd is not None:
        os.set_inheritable(lock_fd, False)  # payloads must not hold the lock after the executor is gone
    setup = LocalSetup.for_analysis(analysis_path)
    local_dir = setup.local_dir
    context = multiprocessing.get_context("fork")
    while True:
        with _executor_lock(local_dir / EXECUTOR_LOCK, lock_fd) as fd:
            lock_fd = None  # handed over once; later rounds take the lock themselves
            if fd is None:
                return 0
            queue = LocalQueue(local_dir)
            recover_lost(queue, local_dir)
            queue.close()  # no connection crosses the fork
            healthy = _supervise(context, setup)
            if not (local_dir / "queue.db").exists():
                return 0  # the analysis was moved or removed meanwhile: never make a new queue where it was
            queue = LocalQueue(local_dir)
            # every runner has exited: a job still `running` has lost its runner
            recover_lost(queue, local_dir)
            if not healthy:
                queue.fail_queued(RUNNERS_DIE)
            pending = queue.count("queued")
            queue.close()
        if not healthy:
            return 1
        if pending == 0:
            return 0


def _entry(argv: list[str]) -> int:
    """`main` for the command line; an analysis it cannot run (e.g. a config made invalid meanwhile) is one
    line in the executor log and exit code 1."""
    try:
        return main(Path(argv[1]), int(argv[2]) if len(argv) > 2 else None)
    except GridpipeError as exc:
        os.write(2, f"{utcnow().isoformat()} cannot run the analysis's jobs: {exc.detail}\n".encode())
        return 1


if __name__ == "__main__":
    sys.exit(_entry(sys.argv))
