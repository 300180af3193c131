"""DIRAC job statuses in gridpipe's words, and links to a job in the DIRAC web monitor."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gridpipe.core.models import BackendStatus
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import utc_text

STATUS_MAP: dict[str, JobStatus] = {
    "Submitting": JobStatus.QUEUED,
    "Received": JobStatus.QUEUED,
    "Checking": JobStatus.QUEUED,
    "Scouting": JobStatus.QUEUED,
    "Staging": JobStatus.QUEUED,
    "Waiting": JobStatus.QUEUED,
    "Matched": JobStatus.QUEUED,
    "Rescheduled": JobStatus.QUEUED,
    "Running": JobStatus.RUNNING,
    "Completing": JobStatus.RUNNING,
    "Stalled": JobStatus.RUNNING,
    "Completed": JobStatus.RUNNING,
    "Done": JobStatus.DONE,
    "Failed": JobStatus.FAILED,
    "Killed": JobStatus.FAILED,
    "Deleted": JobStatus.FAILED,
}
"""DIRAC status -> gridpipe status. Completed (payload ended, job not final yet) is still running; Killed
counts as failed (killed outside gridpipe: gridpipe's own kill marks its jobs killed in its store)."""
FLAGGED = frozenset({"Stalled"})
"""Statuses that are still running but need a look (the pilot stopped sending heartbeats)."""
NO_SITE = frozenset({"", "ANY", "Multiple", "Unknown"})


def gridpipe_status(dirac_status: str) -> JobStatus:
    """The gridpipe status of a DIRAC status (an unknown one counts as queued)."""
    return STATUS_MAP.get(dirac_status, JobStatus.QUEUED)


def backend_status(row: dict[str, Any]) -> BackendStatus:
    """A search row (JobID, Status, MinorStatus, Site, StartExecTime) as gridpipe's BackendStatus."""
    dirac = str(row.get("Status") or "")
    status = gridpipe_status(dirac)
    minor = str(row.get("MinorStatus") or "")
    site = str(row.get("Site") or "")
    reason = None
    if status == JobStatus.FAILED:
        reason = f"DIRAC {dirac}: {minor}" if minor else f"DIRAC {dirac}"
    elif dirac in FLAGGED:
        reason = f"DIRAC {dirac}: {minor}" if minor else f"DIRAC {dirac}"
    elif dirac not in STATUS_MAP:
        reason = f"unknown DIRAC status {dirac!r}"
    return BackendStatus(
        backend_id=str(row["JobID"]),
        status=status,
        site=None if site in NO_SITE else site,
        reason=reason,
        flagged=dirac in FLAGGED or dirac not in STATUS_MAP,
        started=utc_text(row.get("StartExecTime")),
    )


def monitor_link(monitor_url: str, job_id: str | int) -> str | None:
    """URL of a job in the DIRAC web monitor: `{job_id}` in monitor_url is replaced, else ?JobID= is added."""
    if not monitor_url:
        return None
    ident = quote(str(job_id), safe="")
    if "{job_id}" in monitor_url:
        return monitor_url.replace("{job_id}", ident)
    return f"{monitor_url}{'&' if '?' in monitor_url else '?'}JobID={ident}"
