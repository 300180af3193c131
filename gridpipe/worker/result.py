"""How a job ended where it ran."""

from __future__ import annotations

from dataclasses import dataclass

from gridpipe.core.states import JobStatus
from gridpipe.storage.contract import FileInfo

KILLED_BY_USER = "killed by the user"


@dataclass(frozen=True)
class JobResult:
    """Final status, the exit code of the command that decided it, why it failed, and the outputs registered."""

    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None
    outputs: tuple[FileInfo, ...] = ()


def failed(reason: str, exit_code: int | None = None) -> JobResult:
    """A failed job."""
    return JobResult(JobStatus.FAILED, exit_code, reason)


def killed() -> JobResult:
    """A job stopped on request."""
    return JobResult(JobStatus.KILLED, None, KILLED_BY_USER)
