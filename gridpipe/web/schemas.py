"""The API's typed requests and responses (pydantic); the OpenAPI schema is made from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gridpipe.service.attempts import Attempt
from gridpipe.service.driven import DriveOptions


class Strict(BaseModel):
    """Unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Strict):
    """Every error answer: what went wrong and, for a bad request, the field."""

    error: str
    field: str | None = None


class HealthOut(Strict):
    """The service is up."""

    status: str = "ok"
    version: str
    pid: int
    started: str
    analyses: int


class AddRequest(Strict):
    """Hand an analysis to the service."""

    path: str = Field(description="Absolute path of the analysis folder.", min_length=1, max_length=4096)
    options: DriveOptions = DriveOptions()
    paused: bool = Field(False, description="Add it paused (it starts on resume).")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if "\x00" in value or not Path(value).is_absolute():
            raise ValueError("must be an absolute path")
        return value


class EventOut(Strict):
    """One thing the service did with an analysis."""

    time: str
    text: str


class AnalysisOut(Strict):
    """An analysis the service drives."""

    id: str
    path: str
    name: str
    state: str
    message: str
    paused: bool
    options: DriveOptions
    since: str
    warning: str | None = Field(
        None, description="Why submission is paused (e.g. the DIRAC token is near its end)."
    )
    events: list[EventOut] = []


class AnalysesOut(Strict):
    """Every analysis the service drives."""

    analyses: list[AnalysisOut]


class JobOut(Strict):
    """One job as `status --json` shows it."""

    name: str
    stage: str
    particle: str
    status: str
    attempts: int
    backend: str | None
    backend_id: str | None
    site: str | None
    updated: str | None
    reason: str | None
    link: str | None


class StatusOut(Strict):
    """`status --json` of an analysis (jobs: the first `limit`), and what the service does with it."""

    analysis: str
    stages: dict[str, dict[str, dict[str, int]]]
    stale: dict[str, list[str]] = {}
    jobs: list[JobOut]
    service: AnalysisOut


class JobsPage(Strict):
    """A page of jobs."""

    total: int
    offset: int
    limit: int
    jobs: list[JobOut]


class JobDetail(Strict):
    """A job with its attempts and the logs of its last attempt."""

    job: JobOut
    attempts: list[Attempt]
    logs: dict[str, str]
    logs_error: str | None = None


class WorkerOut(Strict):
    """What one worker of a lane does now."""

    worker: str
    task: str | None
    analysis: str | None
    running_for: float | None


class WaitingOut(Strict):
    """A task waiting for a worker."""

    task: str
    analysis: str
    waiting_for: float


class LaneOut(Strict):
    """One lane of work."""

    name: str
    size: int
    capacity: int
    workers: list[WorkerOut]
    waiting: list[WaitingOut]


class QueuesOut(Strict):
    """Every lane."""

    lanes: list[LaneOut]


JobNames = list[Annotated[str, Field(min_length=1, max_length=500)]]


class KillRequest(Strict):
    """Kill jobs: by name, every active or planned job of a stage, or all of them."""

    names: JobNames = Field(default_factory=list, max_length=100_000)
    stage: str | None = Field(None, min_length=1, max_length=200)
    all: bool = False


class KillOut(Strict):
    """What a kill did: the jobs killed, and named jobs left alone because they had already ended."""

    killed: list[str]
    ended: dict[str, str]


class ResubmitRequest(Strict):
    """Resubmit failed or killed jobs: by name, or every one with `failed`."""

    names: JobNames = Field(default_factory=list, max_length=100_000)
    failed: bool = False
    done: bool = False
    """Also run done jobs again (later units made from their outputs become stale)."""


class ResubmitOut(Strict):
    """The jobs resubmitted ({name: backend id})."""

    submitted: dict[str, str]
    stale: dict[str, list[str]] = {}
    """Units of later stages made stale ({stage: [unit]}): `run` redoes them."""


class FailureGroup(Strict):
    """How many failed or killed jobs share a reason (or a site)."""

    key: str | None
    jobs: int


class FailuresOut(Strict):
    """Failed or killed jobs grouped by reason and by site."""

    by_reason: list[FailureGroup]
    by_site: list[FailureGroup]
