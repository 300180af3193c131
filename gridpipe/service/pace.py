"""Throughput over time and the estimated time to completion of each stage: pure arithmetic over the
counts of the job store and the done attempts of a recent window (no I/O here; `read_pace` reads them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.service.context import Analysis
from gridpipe.service.status import stage_counts

TO_DO = ("planned", "queued", "running")
"""Shown states of the jobs a stage still has to finish (failed jobs to retry come back as planned)."""
MIN_SPAN_S = 1.0
"""A rate is never measured over less than this (the first job done a moment after it was submitted)."""


@dataclass(frozen=True)
class DoneAttempt:
    """Attempts of a stage that ended done at `ended`: how many, and the earliest of their submissions."""

    stage: str
    submitted: datetime
    ended: datetime
    jobs: int = 1


@dataclass(frozen=True)
class StagePace:
    """One stage: jobs done and still to do, its recent rate, its estimated time to completion."""

    stage: str
    done: int
    remaining: int
    done_in_window: int
    per_hour: float | None
    """Jobs done per hour over the window (None: none was done in it)."""
    eta_seconds: float | None
    """Seconds until every remaining job is done at that rate (0: nothing left; None: unknown)."""
    series: tuple[int, ...]
    """Jobs done in each bucket of the window, oldest first."""


@dataclass(frozen=True)
class Pace:
    """Every stage's pace at `now`, over a window cut into equal buckets."""

    now: str
    window_s: float
    bucket_s: float
    stages: tuple[StagePace, ...]


def pace(
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    done: Iterable[DoneAttempt],
    now: datetime,
    window_s: float,
    buckets: int,
) -> Pace:
    """The pace of every stage in `counts` ({stage: {unit: {shown state: n}}}) from the attempts done in
    the window (`now - window_s`, `now`]; older ones are ignored.

    A stage's rate is the jobs done in the window over the time from the window's start, or from the
    earliest submission of those jobs if that is later (a run that began ten minutes ago is not measured
    over an hour); its time to completion is the jobs left to do at that rate.
    """
    start = now - timedelta(seconds=window_s)
    bucket_s = window_s / buckets
    by_stage: dict[str, list[DoneAttempt]] = {}
    for a in done:
        if start < a.ended <= now:
            by_stage.setdefault(a.stage, []).append(a)
    stages = []
    for stage in [*counts, *(s for s in by_stage if s not in counts)]:
        units = counts.get(stage, {})
        total_done = sum(c.get("done", 0) for c in units.values())
        remaining = sum(c.get(s, 0) for c in units.values() for s in TO_DO)
        recent = by_stage.get(stage, [])
        series = [0] * buckets
        for a in recent:
            series[min(buckets - 1, int((a.ended - start).total_seconds() / bucket_s))] += a.jobs
        in_window = sum(a.jobs for a in recent)
        per_hour = eta = None
        if recent:
            since = max(start, min(a.submitted for a in recent))
            per_second = in_window / max((now - since).total_seconds(), MIN_SPAN_S)
            per_hour, eta = per_second * 3600, remaining / per_second
        if remaining == 0:
            eta = 0.0
        stages.append(StagePace(stage, total_done, remaining, in_window, per_hour, eta, tuple(series)))
    return Pace(isoformat(now), window_s, bucket_s, tuple(stages))


def read_pace(an: Analysis, window_s: float, buckets: int, now: datetime | None = None) -> Pace:
    """The analysis's pace now, from its store: counts in one grouped query, the done attempts of the window
    grouped by stage and second of their end (at most a row a second however many jobs) through the index
    on their ends."""
    now = now or utcnow()
    since = isoformat(now - timedelta(seconds=window_s))
    done = [
        DoneAttempt(
            stage, datetime.fromisoformat(submitted), datetime.fromisoformat(second).replace(tzinfo=UTC), n
        )
        for stage, second, n, submitted in an.store.done_since(since)
    ]
    return pace(stage_counts(an), done, now, window_s, buckets)
