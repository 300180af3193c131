"""What `status` shows: counts per stage and unit (one grouped query) and job rows read through a cursor."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from gridpipe.core.states import JobStatus, UnitState
from gridpipe.service.context import Analysis

JOB_KEYS = (
    "name",
    "stage",
    "particle",
    "status",
    "attempts",
    "backend",
    "backend_id",
    "site",
    "updated",
    "reason",
    "link",
)
"""Keys of one job in `status --json`, in order (documented in the README)."""


def shown(status: str) -> str:
    """The state a user sees (`submitting` is shown as `queued`)."""
    return JobStatus.QUEUED.value if status == JobStatus.SUBMITTING else status


def stored_states(wanted: Collection[str]) -> set[JobStatus]:
    """The stored states behind shown ones (`queued` covers `submitting`)."""
    out = {JobStatus(s) for s in wanted}
    if JobStatus.QUEUED in out:
        out.add(JobStatus.SUBMITTING)
    return out


def stage_counts(an: Analysis) -> dict[str, dict[str, dict[str, int]]]:
    """{stage: {unit: {shown state: n}}} by SQL aggregate."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for stage, units in an.store.counts().items():
        for unit, counts in units.items():
            merged = out.setdefault(stage, {}).setdefault(unit, {})
            for status, n in counts.items():
                merged[shown(status)] = merged.get(shown(status), 0) + n
    return out


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list: a stage, shown states, at most `limit` (None: all), jobs not done first."""

    stage: str | None = None
    states: frozenset[str] | None = None
    limit: int | None = None
    done_last: bool = False
    unit: str | None = None
    offset: int = 0
    order: str = "planned"
    """One of gridpipe.store.jobstore.JOB_ORDERS."""


def job_rows(an: Analysis, which: JobFilter = JobFilter()) -> Iterator[dict[str, object]]:
    """One dict per job (keys JOB_KEYS), streamed from the store."""
    statuses = stored_states(which.states) if which.states is not None else None
    rows = an.store.summary_rows(
        stage=which.stage,
        statuses=statuses,
        limit=which.limit,
        done_last=which.done_last,
        unit=which.unit,
        offset=which.offset,
        order=which.order,
    )
    for r in rows:
        link = an.backend_named(r[9]).link(r[5]) if r[5] and r[9] else None
        yield dict(zip(JOB_KEYS, (r[0], r[1], r[2], shown(r[3]), r[4], r[9], *r[5:9], link), strict=True))


def stale_units(an: Analysis) -> dict[str, list[str]]:
    """{stage: [unit, ...]} of the units marked stale."""
    out: dict[str, list[str]] = {}
    for (stage, unit), state in sorted(an.store.unit_states().items()):
        if state == UnitState.STALE:
            out.setdefault(stage, []).append(unit)
    return out


def count_jobs(an: Analysis, which: JobFilter) -> int:
    """How many jobs match the stage and states of `which` (its limit aside)."""
    statuses = stored_states(which.states) if which.states is not None else None
    return an.store.count(stage=which.stage, unit=which.unit, statuses=statuses)
