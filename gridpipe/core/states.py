"""Job states shared by the store, the CLI and the JSON output."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """The life of a job. `submitting` is transient: intent recorded, backend not yet confirmed."""

    PLANNED = "planned"
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    KILLED = "killed"


ACTIVE_STATES = frozenset({JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING})
FINAL_STATES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.KILLED})
SHOWN_STATES = (
    JobStatus.PLANNED,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.DONE,
    JobStatus.FAILED,
    JobStatus.KILLED,
)


class UnitState(StrEnum):
    """How far a unit has come beyond its jobs (none yet: not planned)."""

    PLANNED = "planned"
    """Its jobs are in the store."""
    GATHERED = "gathered"
    """grid unit: every job done, outputs downloaded (and merged)."""
    UPLOADED = "uploaded"
    """local unit that uploads: every job done, outputs uploaded to the storage."""
    STALE = "stale"
    """The unit's results were made from outputs of an earlier stage that have been re-run since (a
    `resubmit --done`); `run` runs its jobs again once that stage is complete again."""
