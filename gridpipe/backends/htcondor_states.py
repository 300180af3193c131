"""HTCondor's job states in gridpipe's words, from the few attributes of a job ad gridpipe asks for.

Idle -> queued; Running, Transferring output, Suspended -> running; Held -> running, flagged with the hold
reason (failed once held longer than the hold timeout: gridpipe then removes it); Removed -> killed (failed
when gridpipe removed it for being held too long); Completed -> done only when the worker's exit record says
so (outputs registered), failed with the exit code otherwise. A state gridpipe does not know is never taken
for an end: the job keeps the state it had.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridpipe.backends.batch_folders import from_record
from gridpipe.core.models import BackendStatus
from gridpipe.core.states import JobStatus
from gridpipe.worker.records import ExitRecord

IDLE, RUNNING, REMOVED, COMPLETED, HELD, TRANSFERRING, SUSPENDED = 1, 2, 3, 4, 5, 6, 7
ACTIVE = frozenset({IDLE, RUNNING, HELD, TRANSFERRING, SUSPENDED})
PROJECTION = (
    "ClusterId", "ProcId", "JobStatus", "EnteredCurrentStatus", "HoldReason", "ExitCode", "ExitBySignal",
    "ExitSignal", "RemoveReason", "GridpipeJob", "GridpipeAttempt", "RemoteHost", "LastRemoteHost",
)  # fmt: skip
HELD_TOO_LONG = "gridpipe: held for longer than the hold timeout: "
"""The start of the RemoveReason of a job gridpipe removed for being held too long."""


@dataclass(frozen=True)
class CondorJob:
    """One job as the schedd (or its history) shows it."""

    condor_id: str
    state: int
    entered: float
    hold_reason: str
    exit_code: int | None
    signal: int | None
    remove_reason: str
    name: str
    attempt: int | None
    host: str


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_ad(ad: Mapping[str, Any]) -> CondorJob | None:
    """A job of a query or history answer (None: not one of gridpipe's, or not whole)."""
    cluster, proc = _int(ad.get("ClusterId")), _int(ad.get("ProcId"))
    if cluster is None or proc is None:
        return None
    host = _str(ad.get("RemoteHost")) or _str(ad.get("LastRemoteHost"))
    entered = ad.get("EnteredCurrentStatus")
    return CondorJob(
        f"{cluster}.{proc}",
        _int(ad.get("JobStatus")) or 0,
        float(entered) if isinstance(entered, int | float) else 0.0,
        _str(ad.get("HoldReason")),
        _int(ad.get("ExitCode")),
        _int(ad.get("ExitSignal")) if ad.get("ExitBySignal") is True else None,
        _str(ad.get("RemoveReason")),
        _str(ad.get("GridpipeJob")),
        _int(ad.get("GridpipeAttempt")),
        host.rsplit("@", 1)[-1],
    )


def held_too_long(job: CondorJob, now: float, timeout: float) -> bool:
    return job.state == HELD and now - job.entered > timeout


def status_of(
    job: CondorJob, record: ExitRecord | None, now: float, hold_timeout: float
) -> BackendStatus | None:
    """gridpipe's status of a job the schedd knows (None: a state that must not change the stored one)."""
    cid, site = job.condor_id, (record.host if record is not None else job.host) or None
    if job.state == IDLE:
        return BackendStatus(cid, JobStatus.QUEUED)
    if job.state in (RUNNING, TRANSFERRING, SUSPENDED):
        return BackendStatus(cid, JobStatus.RUNNING, site)
    if job.state == HELD:
        reason = f"HTCondor: held: {job.hold_reason or 'no reason given'}"
        if held_too_long(job, now, hold_timeout):
            return BackendStatus(
                cid, JobStatus.FAILED, site, None, f"{reason} (held longer than {hold_timeout:g} s)"
            )
        return BackendStatus(cid, JobStatus.RUNNING, site, reason=reason, flagged=True)
    if job.state == REMOVED:
        if job.remove_reason.startswith(HELD_TOO_LONG):
            return BackendStatus(
                cid, JobStatus.FAILED, site, None, "HTCondor: " + job.remove_reason[len("gridpipe: ") :]
            )
        return BackendStatus(
            cid, JobStatus.KILLED, site, None, f"HTCondor: removed ({job.remove_reason or 'no reason given'})"
        )
    if job.state == COMPLETED:
        if record is not None:
            return from_record(cid, record)
        if job.signal is not None:
            return BackendStatus(
                cid,
                JobStatus.FAILED,
                site,
                None,
                f"HTCondor: the job died of signal {job.signal}; the job worker left no exit record",
            )
        return BackendStatus(
            cid, JobStatus.FAILED, site, job.exit_code,
            f"HTCondor: completed with exit code {job.exit_code}, but the job worker left no exit record (see gridpipe logs)",
        )  # fmt: skip
    return None
