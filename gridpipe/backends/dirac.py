"""The `dirac` backend: jobs on DIRAC through diracx-client, one JDL per job, submitted 20 at a time.

Submission checks the token first (nothing is created with an expired one), uploads the input sandbox
once per content, renders every JDL (a value DIRAC cannot carry stops everything before the first job
exists), then sends calls of at most 20 JDLs, `submit_parallel` of them in flight, never retried: on
any failure it raises BackendError and the engine reconciles by job name (`lookup`). Status, lookup
and kill are one paged search / one bulk update per call, retried on network faults.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from threading import Event
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

import diracx.client  # noqa: F401 - the `dirac` extra; without it the plugin loader says what to install

from gridpipe.analysis.config import Strict
from gridpipe.backends.contract import Backend
from gridpipe.backends.dirac_client import PER_PAGE, DiracConnection, missing_diracx
from gridpipe.backends.dirac_credentials import TokenInfo, check_token, read_token_info
from gridpipe.backends.dirac_jdl import render_jdl
from gridpipe.backends.dirac_reasons import STD_ERR, needs_sandbox_reason, wrapper_reason
from gridpipe.backends.dirac_sandbox import InputSandboxes, output_texts
from gridpipe.backends.dirac_settings import DiracSection, DiracSettings, dirac_settings
from gridpipe.backends.dirac_status import backend_status, gridpipe_status, monitor_link
from gridpipe.core.exceptions import BackendError
from gridpipe.core.models import BackendJob, BackendStatus, JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.core.timeutil import utcnow

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

MAX_SUBMIT = 20
"""DIRAC refuses more than 20 jobs in one submission call (400, nothing created)."""
KILL_CHUNK = 1000
T = TypeVar("T")
POLL_COLUMNS = ["JobID", "Status", "MinorStatus", "Site", "StartExecTime"]
MAX_SANDBOX_REASONS = 20
"""Most output sandboxes one poll reads to tell why jobs failed (the others keep DIRAC's minor status)."""


class DiracBackend(Backend):
    """DIRAC through diracx-client; connection and credentials as diracx's own, overridable in grid.yaml."""

    name: ClassVar[str] = "dirac"
    settings_model: ClassVar[type[Strict]] = DiracSection
    shares_file_system: ClassVar[bool] = False
    max_batch: ClassVar[int] = MAX_SUBMIT

    def __init__(self, settings: DiracSettings, work_dir: Path) -> None:
        self.settings = settings
        self.connection = DiracConnection(settings.connection)
        self.sandboxes = InputSandboxes(self.connection, work_dir)

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Settings from configs/grid.yaml; nothing is contacted until a method needs the server."""
        return cls(dirac_settings(grid, analysis_path), analysis_path / ".gridpipe" / "dirac")

    @property
    def capacity(self) -> int:
        """Jobs to keep active when grid.yaml does not say."""
        return 500

    @property
    def job_group(self) -> str:
        """The JobGroup of this analysis's jobs."""
        return self.settings.jdl.job_group

    # ---- credentials --------------------------------------------------------------------------
    def check_credentials(self) -> TokenInfo:
        """The token's facts; BackendError when it is expired or too short-lived to start submitting."""
        info = read_token_info(self.settings.connection.token_path)
        check_token(info, self.settings.min_token_validity)
        return info

    def preflight(self) -> None:
        """Refuse a submission before anything is recorded when diracx-client is missing or the token
        cannot carry it."""
        try:
            import diracx.client.sync  # noqa: F401
        except ImportError as exc:
            raise missing_diracx(exc) from exc
        self.check_credentials()

    def submission_blocker(self) -> str | None:
        """The token's problem (expired, or less left than `min_token_validity`), else None."""
        try:
            self.check_credentials()
        except BackendError as exc:
            return exc.detail
        return None

    # ---- submission ---------------------------------------------------------------------------
    def render_jdl(self, spec: JobSpec, input_sandbox: Sequence[str] | None = None) -> str:
        """The job's JDL (pure; without `input_sandbox` it lists the files that would be uploaded)."""
        return render_jdl(spec, self.settings.jdl, input_sandbox)

    def submit(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """Submit jobs in calls of 20 ({name: JobID}); any failure raises BackendError (engine reconciles)."""
        if not specs:
            return {}
        self.check_credentials()
        pfns = {sandbox: self.sandboxes.pfn(sandbox) for sandbox in dict.fromkeys(s.sandbox for s in specs)}
        jdls = [self.render_jdl(spec, [pfns[spec.sandbox]]) for spec in specs]
        chunks = [
            (list(specs[i : i + MAX_SUBMIT]), jdls[i : i + MAX_SUBMIT])
            for i in range(0, len(specs), MAX_SUBMIT)
        ]
        stop = Event()

        def run(chunk: tuple[list[JobSpec], list[str]]) -> tuple[dict[str, str], str | None]:
            if stop.is_set():
                return {}, None
            try:
                return self._submit_chunk(*chunk), None
            except BackendError as exc:
                stop.set()
                return {}, exc.detail

        workers = min(self.settings.submit_parallel, len(chunks))
        if workers == 1:
            outcomes = [run(chunk) for chunk in chunks]
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="gridpipe-dirac-submit") as pool:
                outcomes = list(pool.map(run, chunks))
        accepted = {name: job_id for ids, _ in outcomes for name, job_id in ids.items()}
        errors = [error for _, error in outcomes if error]
        if errors:
            raise BackendError(
                f"{errors[0]} ({len(accepted)} of {len(specs)} job(s) accepted; the others are looked up "
                "by name before anything is submitted again)"
            )
        return accepted

    def _submit_chunk(self, specs: list[JobSpec], jdls: list[str]) -> dict[str, str]:
        what = f"submission of {len(specs)} job(s) from {specs[0].name}"
        inserted = self.connection.call(what, lambda client: client.jobs.submit_jdl_jobs(jdls), retry=False)
        if len(inserted) != len(specs):
            raise BackendError(
                f"{what}: the server answered {len(inserted)} job id(s) for {len(specs)} JDL(s)"
            )
        return {spec.name: str(job.job_id) for spec, job in zip(specs, inserted, strict=True)}

    # ---- status, lookup, kill -----------------------------------------------------------------------
    def poll(self, backend_ids: Sequence[str]) -> list[BackendStatus]:
        """One paged search for all the jobs (per 10,000); jobs the server does not know have failed."""
        ids = _job_ids(backend_ids)
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(ids, PER_PAGE):
            search = [{"parameter": "JobID", "operator": "in", "values": chunk}]
            what = f"status of {len(chunk)} DIRAC job(s)"
            rows += self.connection.search_all(what, search, POLL_COLUMNS, per_page=len(chunk))
        found = self._wrapper_reasons(rows, [backend_status(row) for row in rows])
        known = {s.backend_id for s in found}
        lost = [
            BackendStatus(str(i), JobStatus.FAILED, reason="the DIRAC server does not know this job")
            for i in ids
            if str(i) not in known
        ]
        return found + lost

    def _wrapper_reasons(self, rows: list[dict[str, Any]], found: list[BackendStatus]) -> list[BackendStatus]:
        """`found`, the jobs whose wrapper failed given the reason it left in their std.err (a few per poll:
        these jobs are polled once more at most, and a sandbox that cannot be read keeps DIRAC's words)."""
        read = 0
        for index, row in enumerate(rows):
            if read == MAX_SANDBOX_REASONS:
                break
            if not needs_sandbox_reason(str(row.get("Status") or ""), str(row.get("MinorStatus") or "")):
                continue
            read += 1
            try:
                why = wrapper_reason(self._sandbox_texts(int(row["JobID"])).get(STD_ERR, ""))
            except BackendError:
                continue
            if why:
                found[index] = replace(found[index], reason=f"{why} ({found[index].reason})")
        return found

    def _sandbox_texts(self, job_id: int) -> dict[str, str]:
        what = f"output sandbox of DIRAC job {job_id}"
        pfns = self.connection.call(what, lambda client: client.jobs.get_job_sandbox(job_id, "output"))
        return output_texts(self.connection, job_id, [str(p) for p in pfns]) if pfns else {}

    def lookup(self, names: Sequence[str]) -> dict[str, list[BackendJob]]:
        """Jobs of this analysis's JobGroup (and owner) with these names."""
        found: dict[str, list[BackendJob]] = {}
        base = [{"parameter": "JobGroup", "operator": "eq", "value": self.job_group}]
        try:
            base.append({"parameter": "Owner", "operator": "eq", "value": self._owner()})
        except BackendError:
            pass  # unreadable credentials: the search itself will say so
        for chunk in _chunks(sorted(set(names)), PER_PAGE):
            search = [*base, {"parameter": "JobName", "operator": "in", "values": chunk}]
            what = f"lookup of {len(chunk)} job name(s) in JobGroup {self.job_group}"
            for row in self.connection.search_all(what, search, ["JobID", "JobName", "Status"]):
                job = BackendJob(str(row["JobID"]), str(row["JobName"]), gridpipe_status(str(row["Status"])))
                found.setdefault(job.name, []).append(job)
        return found

    def _owner(self) -> str:
        return read_token_info(self.settings.connection.token_path).user

    def cancel(self, backend_ids: Sequence[str]) -> None:
        """Set the jobs Killed (bulk status updates, the owner may do it; 0.7.0 has no kill route)."""
        from diracx.client.models import JobStatusUpdate

        update = JobStatusUpdate(status="Killed", minor_status="Killed by gridpipe", source="gridpipe")
        for chunk in _chunks(_job_ids(backend_ids), KILL_CHUNK):
            stamp = utcnow().isoformat()
            body = {str(job_id): {stamp: update} for job_id in chunk}
            what = f"kill of {len(chunk)} DIRAC job(s)"
            result = self.connection.call(what, lambda client, body=body: client.jobs.set_job_statuses(body))
            failed = sorted((getattr(result, "failed", None) or {}).keys())
            if failed:
                raise BackendError(f"{what}: the server did not kill job(s) {', '.join(failed[:10])}")

    # ---- logs and links -----------------------------------------------------------------------------
    def logs(self, backend_id: str) -> dict[str, str]:
        """The text files of the job's output sandbox (std.out, std.err, ...)."""
        (job_id,) = _job_ids([backend_id])
        texts = self._sandbox_texts(job_id)
        if not texts:
            raise BackendError(
                f"DIRAC job {job_id} ({self._status_text(job_id)}) has no output sandbox yet: DIRAC stores "
                "std.out and std.err when the job ends; try again later"
            )
        return texts

    def _status_text(self, job_id: int) -> str:
        search = [{"parameter": "JobID", "operator": "eq", "value": job_id}]
        rows = self.connection.search_all(f"status of DIRAC job {job_id}", search, POLL_COLUMNS, per_page=1)
        if not rows:
            return "unknown to the server"
        return f"{rows[0]['Status']}: {rows[0]['MinorStatus']}"

    def monitor_link(self, backend_id: str) -> str | None:
        """The job's page in the DIRAC web monitor (None when grid.yaml sets no dirac.monitor_url)."""
        return monitor_link(self.settings.monitor_url, backend_id)

    def describe(self, spec: JobSpec) -> str | None:
        """The JDL the job would be submitted with (dry runs)."""
        return self.render_jdl(spec)

    def link(self, backend_id: str) -> str | None:
        """The job's page in the DIRAC web monitor, when configured."""
        return self.monitor_link(backend_id)

    def limit_patience(self, seconds: float) -> None:
        """Shorter timeouts and fewer retries, so that a call gives up within about `seconds`."""
        self.connection.close()  # pooled clients keep the timeouts they were made with
        self.connection.settings = self.connection.settings.within(seconds)

    def close(self) -> None:
        """Close the HTTP clients."""
        self.connection.close()


def _job_ids(backend_ids: Sequence[str]) -> list[int]:
    try:
        return sorted({int(i) for i in backend_ids})
    except ValueError:
        bad = [i for i in backend_ids if not str(i).isdigit()]
        raise BackendError(f"not DIRAC job ids: {', '.join(map(repr, bad[:5]))}") from None


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
