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
