"""Retry and throttle policy: pure decisions over plain values, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gridpipe.core.states import JobStatus


class Attempted(Protocol):
    """What the retry policy needs to know of a job (the store's JobRecord is one)."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> JobStatus: ...
    @property
    def attempts(self) -> int: ...


def split_failures(jobs: Iterable[Attempted], max_attempts: int) -> tuple[list[str], list[str]]:
    """Failed jobs to retry (attempts left) and jobs failed for good; other jobs are ignored."""
    failed = [j for j in jobs if j.status == JobStatus.FAILED]
    retry = [j.name for j in failed if j.attempts < max_attempts]
    final = [j.name for j in failed if j.attempts >= max_attempts]
    return retry, final


def free_slots(active: int, max_active: int) -> int:
    """How many jobs may be submitted now (Ganga's `float`)."""
    return max(0, max_active - active)


def wake_when_active_at_most(active: int, waiting: int, max_active: int) -> int:
    """While jobs wait to be submitted, the next cycle is worth it once the active jobs drop to this many
    (half of `max_active` freed, or one job ended, whichever comes first); with none waiting, once all
    have ended."""
    if not waiting:
        return 0
    return max(min(active - 1, max_active // 2), 0)


def idle_wait(poll_interval: float, quiet_cycles: int, ceiling: float) -> float:
    """Seconds to wait before the next cycle: `poll_interval` after a cycle that moved something, then
    doubling with each quiet cycle in a row, up to `ceiling` (never below `poll_interval`)."""
    return min(poll_interval * 2.0 ** min(quiet_cycles, 30), max(poll_interval, ceiling))
