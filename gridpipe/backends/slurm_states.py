"""Slurm's job states in gridpipe's words, and the rows `squeue` prints.

PENDING/CONFIGURING/REQUEUED -> queued; RUNNING/COMPLETING/SUSPENDED -> running; COMPLETED -> done only when
the worker's exit record says so (outputs registered); FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, BOOT_FAIL,
DEADLINE, PREEMPTED, ... -> failed; CANCELLED -> killed. A state gridpipe does not know (or UNKNOWN) is
never taken for an end: the job keeps the state it had.
"""

from __future__ import annotations

from dataclasses import dataclass

from gridpipe.backends.batch_folders import from_record
from gridpipe.core.models import BackendStatus
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import isoformat
from gridpipe.worker.records import ExitRecord

QUEUED = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "RESIZING"}
)
RUNNING = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "POWER_UP_NODE"}
)
FAILED = frozenset(
    {
        "FAILED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
KILLED = frozenset({"CANCELLED"})

SQUEUE_FORMAT = "%i|%T|%r|%k|%u|%j"
"""Id, state, reason, comment, user, name: classic letters both 22.05 and 24.x print; the name (no '|' in
gridpipe's names) last."""


@dataclass(frozen=True)
class SlurmRow:
    """One job as squeue (or sacct) shows it."""

    slurm_id: str
    state: str
    reason: str
    comment: str
    user: str
    name: str
    workdir: str = ""
    """The job's working folder (sacct's rows only: accounting stores it, while it keeps comments only
    when the cluster sets AccountingStoreFlags=job_comment)."""


SACCT_FIELDS = "JobIDRaw,State,Reason,Comment,User,WorkDir,JobName"
"""sacct's columns: those of SQUEUE_FORMAT and the working folder before the name (which stays last)."""


def parse_rows(text: str, *, workdir: bool = False) -> list[SlurmRow]:
    """Rows of `squeue -h -o SQUEUE_FORMAT` (or, with `workdir`, of `sacct -P -o SACCT_FIELDS`); lines that
    do not fit are skipped."""
    width = 7 if workdir else 6
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|", width - 1)]
        if len(parts) != width or not parts[0].isdigit():
            continue  # array or het-job steps (1_2, 3+0) are not gridpipe's
        ident, state, reason, comment, user = parts[:5]
        folder = parts[5] if workdir else ""
        state = state.split()[0].rstrip("+") if state else ""
        rows.append(SlurmRow(ident, state, reason, comment, user, parts[-1], folder))
    return rows


def _reason(row: SlurmRow) -> str:
    detail = row.reason if row.reason and row.reason not in ("None", "(null)") else ""
    return f"Slurm: {row.state}" + (f" ({detail})" if detail else "")


def status_of(row: SlurmRow, record: ExitRecord | None, note: str | None = None) -> BackendStatus | None:
    """gridpipe's status of a job Slurm knows (None: a state that must not change the stored one); `note`:
    what slurmstepd said about an ended job (its memory limit, its time limit), added to the reason."""
    state = row.state
    if state in QUEUED:
        return BackendStatus(row.slurm_id, JobStatus.QUEUED)
    if state in RUNNING:
        return BackendStatus(row.slurm_id, JobStatus.RUNNING, _site(record))
    if state == "COMPLETED":
        if record is None:
            return BackendStatus(
                row.slurm_id,
                JobStatus.FAILED,
                reason="Slurm: COMPLETED, but the job worker left no exit record (see gridpipe logs)",
            )
        return from_record(row.slurm_id, record)
    if state in FAILED or state in KILLED:
        status = JobStatus.KILLED if state in KILLED else JobStatus.FAILED
        worker = f"; worker: {record.reason}" if record is not None and record.reason else ""
        stepd = f"; {note}" if note else ""
        code = record.exit_code if record is not None else None
        started = isoformat(record.started) if record is not None else None
        return BackendStatus(
            row.slurm_id, status, _site(record), code, _reason(row) + stepd + worker, started=started
        )
    return None


def stepd_note(err_text: str) -> str | None:
    """The line of slurmstepd in a job's error file that says why Slurm ended it, None when there is none.

    Without cgroups (task/none) a job killed over its --mem ends FAILED, not OUT_OF_MEMORY; slurmstepd's
    "exceeded memory limit (used > limit)" line is then the only place that says so."""
    lines = [line.strip() for line in err_text.splitlines() if line.startswith("slurmstepd")]
    for wanted in ("memory limit", "oom-kill", "DUE TO TIME LIMIT", "DUE TO", "error:"):
        found = next((line for line in lines if wanted in line), None)
        if found is not None:
            return "slurmstepd: " + found.split("error:", 1)[-1].strip()[:300]
    return None


def _site(record: ExitRecord | None) -> str | None:
    return record.host if record is not None else None
