"""Refresh active jobs from their backends (one batch poll per backend) and record their outputs."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from gridpipe.core.exceptions import (
    BackendError,
    DatabaseFileError,
    ExecutorFailingError,
    MissingPackageError,
)
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.service.submission import plugin_imports, reconcile_if_idle


def refresh(an: Analysis) -> list[tuple[str, JobStatus]]:
    """Poll every active job; returns (name, new status) of the jobs that changed."""
    if an.store.count(statuses=[JobStatus.SUBMITTING]):
        reconcile_if_idle(an)
    changed: list[tuple[str, JobStatus]] = []
    for backend_name, ids in an.store.active_ids().items():
        changed += apply_polled(an, backend_name, ids)
    return changed


INTERACTIVE_PATIENCE_S = 8.0
"""About the longest a `status` waits for an unreachable backend before showing what is stored."""


def refresh_or_explain(an: Analysis) -> str | None:
    """Refresh like `refresh` where possible; otherwise say why the stored state is shown unrefreshed
    (a read-only analysis, a backend that cannot be reached) instead of failing."""
    if an.store.readonly:
        return f"{an.store.path} is read-only here: showing the stored state, not refreshed"
    try:
        for backend_name in an.store.active_ids():
            an.backend_named(backend_name).limit_patience(INTERACTIVE_PATIENCE_S)
        refresh(an)
    except (BackendError, DatabaseFileError, ExecutorFailingError, MissingPackageError) as exc:
        return f"could not refresh ({exc.detail}); showing the stored state"
    return None


def apply_polled(
    an: Analysis, backend_name: str, ids: Sequence[str], only: Collection[JobStatus] | None = None
) -> list[tuple[str, JobStatus]]:
    """Poll these jobs of one backend (one batch) and record what changed, or only changes to the states
    `only`; the outputs of jobs that are done are checked and recorded."""
    with plugin_imports():
        backend = an.backend_named(backend_name)
        reports = backend.poll(ids)
    if only is not None:
        reports = [r for r in reports if r.status in only]
    changed = an.store.apply_statuses(backend.name, reports)
    done = [name for name, status in changed if status == JobStatus.DONE]
    if done:
        _record_outputs(an, done)
    return changed


def _record_outputs(an: Analysis, names: list[str]) -> None:
    """Check that done grid jobs' outputs are in storage; a job whose outputs are missing has failed."""
    outputs = an.store.grid_outputs(names)
    if not outputs:
        return
    found = an.storage.stat([lfn for lfns in outputs.values() for lfn in lfns])
    missing = []
    rows = []
    for name, lfns in outputs.items():
        infos = [found[lfn] for lfn in lfns if lfn in found]
        if len(infos) != len(lfns):
            missing.append(name)
        rows += [(name, i.lfn, i.size, i.adler32) for i in infos]
    an.store.add_files_many("output", rows)
    if missing:
        an.store.set_status(missing, JobStatus.FAILED, "the job ended but its outputs are not in storage")
