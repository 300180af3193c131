"""The service's HTTP API (`/v1/...`, OpenAPI at `/v1/openapi.json`) and its dashboard (`/`).

Thin: each endpoint checks its input (pydantic), calls the supervisor or the engine's read functions, and
turns gridpipe's errors into a JSON answer with a 4xx code naming the field. No endpoint runs code sent to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from gridpipe.core.exceptions import (
    AnalysisNotFoundError,
    BackendError,
    GridpipeError,
    JobNotFoundError,
    RunLockedError,
    UsageError,
)
from gridpipe.service.attempts import read_attempts
from gridpipe.service.context import Analysis
from gridpipe.service.lanes import LaneView
from gridpipe.service.pace import Pace, read_pace
from gridpipe.service.statedir import ServiceInfo
from gridpipe.service.status import JobFilter, count_jobs, job_rows, shown, stage_counts, stale_units
from gridpipe.service.supervisor import AlreadyDrivenError, DriveView, Supervisor, UnknownAnalysisError
from gridpipe.web import schemas as s

AnalysisId = Annotated[
    str, PathParam(pattern=r"^[0-9a-f]{12}$", description="The analysis's id (GET /v1/analyses).")
]
JobName = Annotated[str, PathParam(min_length=1, max_length=500, description="The job's name.")]
EVENT_POLL_S = 0.5
"""How often an event stream looks for new events (a list in memory: no store read)."""
JOB_STATES = ("planned", "queued", "running", "done", "failed", "killed")
PACE_REUSE_FACTOR = 10.0
PACE_REUSE_MAX_S = 5.0
"""A pace that took t seconds to read is served again for 10 t seconds (at most 5 s): with 50,000 jobs done in
the hour a dashboard polling every second costs a read every few seconds, a small analysis is always fresh."""


class PaceCache:
    """Recent paces by (analysis, window, buckets), each kept for a time in proportion to its cost."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, float, int], tuple[float, Pace]] = {}
        self._guard = threading.Lock()

    def get(self, key: tuple[str, float, int], read: Callable[[], Pace]) -> Pace:
        """The kept pace if still fresh, else `read()` (kept for next time)."""
        now = time.monotonic()
        with self._guard:
            kept = self._kept.get(key)
        if kept is not None and now < kept[0]:
            return kept[1]
        pace = read()
        cost = time.monotonic() - now
        with self._guard:
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
            self._kept[key] = (now + min(PACE_REUSE_MAX_S, PACE_REUSE_FACTOR * cost), pace)
        return pace


@dataclass
class ServiceContext:
    """What the app works with."""

    supervisor: Supervisor
    info: ServiceInfo
    shutdown: Callable[[], None]


def _analysis_out(view: DriveView, *, events: bool = True) -> s.AnalysisOut:
    return s.AnalysisOut(
        id=view.id,
        path=view.path,
        name=view.name,
        state=view.state.value,
        message=view.message,
        paused=view.paused,
        options=view.options,
        since=view.since,
        warning=view.warning,
        events=[s.EventOut(time=t, text=x) for t, x in view.events] if events else [],
    )


def _lane_out(lane: LaneView) -> s.LaneOut:
    return s.LaneOut(
        name=lane.name,
        size=lane.size,
        capacity=lane.capacity,
        workers=[
            s.WorkerOut(worker=w.worker, task=w.task, analysis=w.owner, running_for=w.running_for)
            for w in lane.workers
        ],
        waiting=[
            s.WaitingOut(task=t.task, analysis=t.owner, waiting_for=t.waiting_for) for t in lane.waiting
        ],
    )


def _error(status: int, error: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(s.ErrorOut(error=error, field=field).model_dump(), status_code=status)


def _status_of(exc: GridpipeError) -> tuple[int, str | None]:
    if isinstance(exc, UnknownAnalysisError):
        return 404, "analysis_id"
    if isinstance(exc, JobNotFoundError):
        return 404, "name"
    if isinstance(exc, AnalysisNotFoundError):
        return 404, "path"
    if isinstance(exc, AlreadyDrivenError | RunLockedError):
        return 409, "path"
    if isinstance(exc, BackendError):
        return 502, None
    if isinstance(exc, UsageError):
        return 400, None
    return 409, None


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return _error(
            422, f"{field}: {first.get('msg', 'invalid')}" if field else first["msg"], field or None
        )

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("gridpipe.service").exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__} (see `gridpipe service logs`)")

    @app.exception_handler(GridpipeError)
    async def _gridpipe(_request: Request, exc: GridpipeError) -> JSONResponse:
        status, field = _status_of(exc)
        return _error(status, exc.detail, field)


def _dashboard() -> str:
    return resources.files("gridpipe.web").joinpath("dashboard.html").read_text(encoding="utf-8")


def create_app(ctx: ServiceContext) -> FastAPI:
    """The API and the dashboard over `ctx`."""
    sup = ctx.supervisor
    app = FastAPI(
        title="gridpipe service",
        version=ctx.info.version,
        openapi_url="/v1/openapi.json",
        docs_url=None,  # the interactive docs load their assets from the internet
        redoc_url=None,
    )
    _install_errors(app)
    page = _dashboard()
    paces = PaceCache()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(
            page,
            headers={
                "content-security-policy": "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                "style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
                "x-content-type-options": "nosniff",
                "cache-control": "no-store",
            },
        )

    @app.get("/v1/health", response_model=s.HealthOut)
    def health() -> s.HealthOut:
        return s.HealthOut(
            version=ctx.info.version, pid=ctx.info.pid, started=ctx.info.started, analyses=len(sup.views())
        )

    @app.get("/v1/analyses", response_model=s.AnalysesOut)
    def analyses() -> s.AnalysesOut:
        return s.AnalysesOut(analyses=[_analysis_out(v, events=False) for v in sup.views()])

    @app.post("/v1/analyses", response_model=s.AnalysisOut, status_code=201)
    def add(request: s.AddRequest) -> s.AnalysisOut:
        return _analysis_out(sup.add(Path(request.path), request.options, paused=request.paused))

    @app.get("/v1/analyses/{analysis_id}", response_model=s.AnalysisOut)
    def one(analysis_id: AnalysisId) -> s.AnalysisOut:
        return _analysis_out(sup.view(analysis_id))

    @app.post("/v1/analyses/{analysis_id}/pause", response_model=s.AnalysisOut)
    def pause(analysis_id: AnalysisId) -> s.AnalysisOut:
        return _analysis_out(sup.pause(analysis_id))

    @app.post("/v1/analyses/{analysis_id}/resume", response_model=s.AnalysisOut)
    def resume(analysis_id: AnalysisId) -> s.AnalysisOut:
        return _analysis_out(sup.resume(analysis_id))

    @app.post("/v1/analyses/{analysis_id}/remove", response_model=s.AnalysisOut)
    def remove(analysis_id: AnalysisId) -> s.AnalysisOut:
        return _analysis_out(sup.remove(analysis_id))

    @app.get("/v1/analyses/{analysis_id}/status", response_model=s.StatusOut)
    def status(analysis_id: AnalysisId, limit: Annotated[int, Query(ge=0, le=10_000)] = 100) -> s.StatusOut:
        view = sup.view(analysis_id)
        with Analysis.open(Path(view.path)) as an:
            jobs = [s.JobOut.model_validate(j) for j in job_rows(an, JobFilter(limit=limit))]
            return s.StatusOut(
                analysis=str(an.path),
                stages=stage_counts(an),
                stale=stale_units(an),
                jobs=jobs,
                service=_analysis_out(view),
            )

    @app.get("/v1/analyses/{analysis_id}/jobs", response_model=s.JobsPage)
    def jobs(
        analysis_id: AnalysisId,
        stage: Annotated[str | None, Query(max_length=200)] = None,
        particle: Annotated[str | None, Query(max_length=200)] = None,
        status: Annotated[list[str] | None, Query(max_length=6)] = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        sort: Annotated[
            Literal["planned", "name", "status", "updated"],
            Query(description="Order of the jobs (updated: the latest first)."),
        ] = "planned",
    ) -> s.JobsPage:
        bad = [x for x in status or [] if x not in JOB_STATES]
        if bad:
            return _bad_status(bad)  # type: ignore[return-value]
        view = sup.view(analysis_id)
        which = JobFilter(
            stage, frozenset(status) if status else None, limit, unit=particle, offset=offset, order=sort
        )
        with Analysis.open(Path(view.path)) as an:
            rows = [s.JobOut.model_validate(j) for j in job_rows(an, which)]
            return s.JobsPage(total=count_jobs(an, which), offset=offset, limit=limit, jobs=rows)

    @app.get("/v1/analyses/{analysis_id}/jobs/{name}", response_model=s.JobDetail)
    def job(analysis_id: AnalysisId, name: JobName) -> s.JobDetail:
        from gridpipe.service.jobs import job_logs

        view = sup.view(analysis_id)
        with Analysis.open(Path(view.path)) as an:
            found = an.store.get([name]).get(name)
            if found is None:
                raise JobNotFoundError([name])
            attempts = read_attempts(an, name)
            logs: dict[str, str] = {}
            problem = None
            try:
                logs = job_logs(an, name).streams
            except GridpipeError as exc:
                problem = exc.detail
            out = s.JobOut(
                name=found.name,
                stage=found.stage,
                particle=found.unit,
                status=shown(found.status),
                attempts=len(attempts),  # submissions, as `status` counts them
                backend=found.backend,
                backend_id=found.backend_id,
                site=found.site,
                updated=found.updated,
                reason=found.reason,
                link=_link(an, found.backend, found.backend_id),
            )
            return s.JobDetail(job=out, attempts=attempts, logs=logs, logs_error=problem)

    @app.get("/v1/analyses/{analysis_id}/pace", response_model=Pace)
    def analysis_pace(
        analysis_id: AnalysisId,
        window: Annotated[
            float, Query(ge=10, le=30 * 86400, description="Seconds of recent history the rates use.")
        ] = 3600,
        buckets: Annotated[int, Query(ge=1, le=500, description="Parts of the window in the series.")] = 30,
    ) -> Pace:
        view = sup.view(analysis_id)

        def read() -> Pace:
            with Analysis.open(Path(view.path)) as an:
                return read_pace(an, window, buckets)

        return paces.get((analysis_id, window, buckets), read)

    @app.get("/v1/analyses/{analysis_id}/failures", response_model=s.FailuresOut)
    def failures(analysis_id: AnalysisId) -> s.FailuresOut:
        view = sup.view(analysis_id)
        with Analysis.open(Path(view.path)) as an:
            groups = an.store.failure_groups()
        return s.FailuresOut(
            by_reason=[s.FailureGroup(key=k, jobs=n) for k, n in groups["reason"]],
            by_site=[s.FailureGroup(key=k, jobs=n) for k, n in groups["site"]],
        )

    @app.post("/v1/analyses/{analysis_id}/kill", response_model=s.KillOut)
    def kill(analysis_id: AnalysisId, request: s.KillRequest) -> s.KillOut:
        from gridpipe.service.jobs import kill as kill_jobs

        view = sup.view(analysis_id)
        with Analysis.open(Path(view.path)) as an:
            report = kill_jobs(an, request.names, stage=request.stage, all_jobs=request.all)
        return s.KillOut(killed=report.killed, ended={k: str(v) for k, v in report.ended.items()})

    @app.post("/v1/analyses/{analysis_id}/resubmit", response_model=s.ResubmitOut)
    def resubmit(analysis_id: AnalysisId, request: s.ResubmitRequest) -> s.ResubmitOut:
        from gridpipe.service.jobs import resubmit as resubmit_jobs

        view = sup.view(analysis_id)
        with Analysis.open(Path(view.path)) as an:
            report = resubmit_jobs(an, request.names, failed=request.failed, done=request.done)
        stale: dict[str, list[str]] = {}
        for stage, unit in report.stale:
            stale.setdefault(stage, []).append(unit)
        return s.ResubmitOut(submitted=report.submission.submitted, stale=stale)

    @app.get(
        "/v1/analyses/{analysis_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
    )
    async def events(
        analysis_id: AnalysisId,
        after: Annotated[int, Query(ge=0, le=2**53, description="Start at this event number.")] = 0,
        follow: Annotated[bool, Query(description="Keep the stream open for new events.")] = True,
    ) -> StreamingResponse:
        sup.view(analysis_id)  # an unknown id is a 404 now, not an empty stream

        async def stream() -> AsyncIterator[bytes]:
            number = after
            while True:
                try:
                    noted, fresh = sup.events_since(analysis_id, number)
                except UnknownAnalysisError:  # removed meanwhile: the stream ends
                    return
                for i, (time_, text) in enumerate(fresh, start=noted - len(fresh)):
                    data = json.dumps({"time": time_, "text": text}, ensure_ascii=False)
                    yield f"id: {i}\nevent: analysis\ndata: {data}\n\n".encode()
                number = noted
                if not follow:
                    return
                await asyncio.sleep(EVENT_POLL_S)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"cache-control": "no-store"}
        )

    @app.get("/v1/queues", response_model=s.QueuesOut)
    def queues() -> s.QueuesOut:
        return s.QueuesOut(lanes=[_lane_out(lane) for lane in sup.pools.views()])

    @app.post("/v1/shutdown", response_model=s.HealthOut)
    def shutdown() -> s.HealthOut:
        out = health()
        ctx.shutdown()
        return out.model_copy(update={"status": "stopping"})

    return app


def _link(an: Analysis, backend: str | None, backend_id: str | None) -> str | None:
    if not backend_id or backend != an.grid.backend.name or backend == "local":
        return None
    return an.backend.link(backend_id)


def _bad_status(bad: list[str]) -> JSONResponse:
    return _error(422, f"query.status: {bad[0]!r} is not one of {', '.join(JOB_STATES)}", "query.status")
