"""Refresh active jobs from their backends (one batch poll per backend) and record their outputs."""

from __future__ import annotations

from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.service.submission import reconcile


def refresh(an: Analysis) -> list[tuple[str, JobStatus]]:
    """Poll every active job; returns (name, new status) of the jobs that changed."""
    if an.store.jobs(statuses=[JobStatus.SUBMITTING]):
        reconcile(an)
    active = [j for j in an.store.active() if j.backend_id]
    changed: list[tuple[str, JobStatus]] = []
    by_backend: dict[str, list[str]] = {}
    for job in active:
        by_backend.setdefault(job.backend or "", []).append(job.backend_id or "")
    for backend_name, ids in by_backend.items():
        backend = an.backend_named(backend_name)
        changed += an.store.apply_statuses(backend.name, backend.poll(ids))
    done = [name for name, status in changed if status == JobStatus.DONE]
    if done:
        _record_outputs(an, done)
    return changed


def _record_outputs(an: Analysis, names: list[str]) -> None:
    """Check that done grid jobs' outputs are in storage; a job whose outputs are missing has failed."""
    jobs = [j for j in an.store.get(names).values() if j.spec.where == "grid" and j.spec.outputs]
    if not jobs:
        return
    found = an.storage.stat([lfn for j in jobs for lfn in j.spec.outputs])
    missing = []
    for job in jobs:
        infos = [found[lfn] for lfn in job.spec.outputs if lfn in found]
        if len(infos) != len(job.spec.outputs):
            missing.append(job.name)
        an.store.add_files(job.name, "output", [(i.lfn, i.size, i.adler32) for i in infos])
    if missing:
        an.store.set_status(missing, JobStatus.FAILED, "the job ended but its outputs are not in storage")
