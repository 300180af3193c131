"""Retry and throttle policy: pure decisions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from gridpipe.core.states import JobStatus
from gridpipe.store import JobRecord


def split_failures(jobs: Sequence[JobRecord], max_attempts: int) -> tuple[list[str], list[str]]:
    """Failed jobs to retry (attempts left) and jobs failed for good."""
    retry = [j.name for j in jobs if j.status == JobStatus.FAILED and j.attempts < max_attempts]
    final = [j.name for j in jobs if j.status == JobStatus.FAILED and j.attempts >= max_attempts]
    return retry, final


def free_slots(active: int, max_active: int) -> int:
    """How many jobs may be submitted now (Ganga's `float`)."""
    return max(0, max_active - active)
