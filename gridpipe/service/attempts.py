"""One attempt (a submission of a job to a backend): the one definition the report, trace.tsv and the API's
job detail share, read from the job store."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gridpipe.service.context import Analysis


class Attempt(BaseModel):
    """One submission of a job: where it ran, how it ended, and when it was submitted, started and ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str
    stage: str
    particle: str
    number: int
    backend: str
    backend_id: str | None
    status: str
    site: str | None
    exit_code: int | None
    reason: str | None
    submitted: str
    started: str | None = None
    """When it began to run, as its backend or its job worker recorded it (else when first seen running)."""
    ended: str | None


FIELDS = tuple(Attempt.model_fields)
"""The fields in the order of the store's attempt rows."""


def read_attempts(an: Analysis, job: str | None = None) -> list[Attempt]:
    """Every attempt of the analysis (or of one job), in the order they were made."""
    return [
        Attempt.model_construct(**dict(zip(FIELDS, row, strict=True))) for row in an.store.attempt_rows(job)
    ]
