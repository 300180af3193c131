"""Exactly-once submission: record the intent, call the backend, confirm; reconcile by name after a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from gridpipe.core.exceptions import BackendError, MissingPackageError, UsageError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.store import JobRecord


@dataclass
class SubmitReport:
    """What a submission round did."""

    submitted: dict[str, str] = field(default_factory=dict)
    adopted: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


@contextmanager
def submission_lock(an: Analysis, *, wait: bool = True) -> Iterator[bool]:
    """Exclusive right to submit or reconcile in this analysis; yields False when `wait` is off and it is taken.

    A job in `submitting` may be in the hands of another live process; only the holder of this lock may
    decide that such a job was lost. The kernel releases the lock when its holder dies, even by kill -9.
    """
    with held_lock(an.path / ".gridpipe" / "submit.lock", wait=wait) as fd:
        yield fd is not None


@contextmanager
def plugin_imports() -> Iterator[None]:
    """Around a call into a backend: a package that cannot be imported is a MissingPackageError (a
    UsageError: the command stops at once and `run` does not wait for it as for an outage)."""
    try:
        yield
    except ImportError as exc:
        raise MissingPackageError.of(exc) from exc


def reconcile_if_idle(an: Analysis) -> None:
    """Reconcile unless another process is submitting right now (then its jobs are not lost)."""
    with submission_lock(an, wait=False) as mine:
        if mine:
            reconcile(an)


def reconcile(an: Analysis) -> SubmitReport:
    """Jobs left `submitting` by an interrupted run: adopt what the backend has, return the rest to planned.

    Call it only while holding `submission_lock`.
    """
    report = SubmitReport()
    pending = an.store.jobs(statuses=[JobStatus.SUBMITTING])
    by_backend: dict[str, list[JobRecord]] = {}
    for job in pending:
        by_backend.setdefault(job.backend or an.grid.backend.name, []).append(job)
    for backend_name, jobs in by_backend.items():
        with plugin_imports():
            backend = an.backend_named(backend_name)
            found = backend.lookup([job.name for job in jobs])
        adopt: dict[str, str] = {}
        extra: list[str] = []
        for job in jobs:
            earlier = an.store.attempt_ids(job.name)
            fresh = sorted(
                (b for b in found.get(job.name, []) if b.backend_id not in earlier),
                key=lambda b: (len(b.backend_id), b.backend_id),
            )
            if fresh:
                adopt[job.name] = fresh[0].backend_id
                extra += [b.backend_id for b in fresh[1:]]
        if extra:
            backend.cancel(extra)
            an.store.log_event("duplicates-cancelled", f"{backend_name}: {', '.join(extra)}")
        if adopt:
            an.store.confirm_submitted(adopt, adopted=True)
            report.adopted.update(adopt)
        lost = [job.name for job in jobs if job.name not in adopt]
        if lost:
            an.store.revert_unsubmitted(lost, "submission interrupted before the backend took the job")
    return report


def submit(
    an: Analysis, names: Sequence[str], *, progress: Callable[[int], None] | None = None
) -> SubmitReport:
    """Submit planned jobs, in backend-sized batches, exactly once."""
    with submission_lock(an):
        return _submit_locked(an, names, progress)


def _submit_locked(
    an: Analysis, names: Sequence[str], progress: Callable[[int], None] | None
) -> SubmitReport:
    report = reconcile(an)
    records = an.store.get(names)
    todo = [records[n] for n in names if n in records and records[n].status == JobStatus.PLANNED]
    groups: dict[str, list[JobRecord]] = {}
    for job in todo:
        groups.setdefault(an.backend_name_of(job.spec.where, job.spec.backend), []).append(job)
    for backend_name, jobs in groups.items():
        with plugin_imports():
            backend = an.backend_named(backend_name)
        size = min(backend.max_batch, an.grid.backend.submit_batch or backend.max_batch)
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            batch_names = [job.name for job in batch]
            an.store.begin_attempts(batch_names, backend.name)
            try:
                with plugin_imports():
                    accepted = backend.submit([job.spec for job in batch])
            except UsageError as exc:
                # refused before anything reached the backend (a missing package, a bad setting): the
                # jobs go back to planned with the reason, and the error stops the command
                an.store.revert_unsubmitted(batch_names, f"not submitted: {exc.detail}")
                raise
            except BackendError as exc:
                try:
                    again = reconcile(an)
                except UsageError as fatal:  # the lookup cannot even start (a missing package)
                    an.store.revert_unsubmitted(batch_names, f"not submitted: {fatal.detail}")
                    raise
                report.adopted.update(again.adopted)
                for name in batch_names:
                    if name not in again.adopted:
                        report.failed[name] = exc.detail
                raise
            an.store.confirm_submitted(accepted)
            rejected = [name for name in batch_names if name not in accepted]
            if rejected:
                an.store.revert_unsubmitted(rejected, "the backend did not accept the job")
                report.failed.update({name: "not accepted by the backend" for name in rejected})
            report.submitted.update(accepted)
            if progress:
                progress(len(accepted))
    return report
