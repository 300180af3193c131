"""The `htcondor` backend: one schedd transaction per batch, one query per refresh, one remove for many.

Talks to the schedd through HTCondor's Python bindings (`pip install "gridpipe[htcondor]"`, modules
`htcondor2`/`classad2`). Each job runs the shared job worker (`python -m gridpipe.worker`) on its line of
its submission's batch file; the worker's exit record answers for a job the schedd has forgotten. Jobs
carry +GridpipeAnalysis, +GridpipeJob and +GridpipeAttempt, so that after a crash they are found again by
attribute (`lookup`) in the queue and the history, and never submitted twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import htcondor2  # noqa: F401 - the plugin loader turns a missing package into the one-line install error

from gridpipe.analysis.config import Strict
from gridpipe.analysis.naming import is_safe_name
from gridpipe.backends.batch_backend import BatchBackend
from gridpipe.backends.batch_folders import AttemptFolder, from_record
from gridpipe.backends.htcondor_client import ScheddClient, ScheddUnreachableError
from gridpipe.backends.htcondor_jobs import (
    JobFolders,
    describe_text,
    description,
    is_condor_id,
    item,
)
from gridpipe.backends.htcondor_settings import HTCondorSection
from gridpipe.backends.htcondor_states import (
    ACTIVE,
    HELD_TOO_LONG,
    PROJECTION,
    CondorJob,
    held_too_long,
    parse_ad,
    status_of,
)
from gridpipe.core.exceptions import BackendError
from gridpipe.core.models import BackendJob, BackendStatus, JobSpec
from gridpipe.core.states import JobStatus

LOG_LIMIT = 1 << 20
HISTORY_MARGIN = 3600.0
"""Seconds before the oldest missing job's submission at which a history scan stops (clock skew, slow queue)."""
NAMES_PER_LOOKUP = 500


class HTCondorBackend(BatchBackend):
    """Jobs on an HTCondor pool that shares the analysis's file system (or transfers the job's files)."""

    name: ClassVar[str] = "htcondor"
    system: ClassVar[str] = "HTCondor"
    settings_model: ClassVar[type[Strict]] = HTCondorSection

    def __init__(self, analysis_path: Path, settings: HTCondorSection) -> None:
        super().__init__(analysis_path, settings)
        self.settings = settings
        self.folders = JobFolders(self.analysis_path)
        self.client = ScheddClient(
            settings.schedd, settings.collector, settings.retries, settings.backoff, settings.backoff_max
        )

    def limit_patience(self, seconds: float) -> None:
        """An interactive command spends at most about `seconds` waiting for the schedd."""
        c = self.client
        while c.retries and c.backoff * (2**c.retries - 1) > seconds:
            c.retries -= 1

    # ---- submission -------------------------------------------------------------------------------
    def describe(self, spec: JobSpec) -> str | None:
        """The submit description the job would be given (dry runs; no folder is made)."""
        desc = description(self.settings, self.folders, self.key, "N")
        return describe_text(desc, [item(spec.name, 0, self.settings.file_transfer)])

    def submit(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """One schedd transaction for the whole batch (all jobs or none); a failure is reconciled by
        attribute before anything is tried again, then raises BackendError."""
        self.check_names(specs)
        if not specs:
            return {}
        self.folders.ensure_script(self.job_python())
        batch = self.folders.new_batch(list(specs), self.settings.environment, self.settings.file_transfer)
        desc = description(self.settings, self.folders, self.key, batch.number)
        folders, items = batch.folders, batch.items
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            try:
                cluster, first = self.client.submit(desc, items)
            except ScheddUnreachableError as exc:
                found = self._find_attempts(folders)
                if found:  # the transaction went through before the answer was lost
                    return found
                if attempt == self.settings.retries:
                    note = " (no job of this batch reached the schedd; they are submitted again later)"
                    raise ScheddUnreachableError(exc.what, exc.problem + note) from None
                time.sleep(delay)
                delay = min(max(delay * 2, 0.1), self.settings.backoff_max)
                continue
            ids = {f"{cluster}.{first + n}": folder for n, folder in enumerate(folders)}
            self.folders.record(ids)
            return {folder.name: condor_id for condor_id, folder in ids.items()}
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_attempts(self, folders: list[AttemptFolder]) -> dict[str, str]:
        """The ids of these very attempts when the schedd has them (after a submit that did not answer)."""
        wanted = {(f.name, f.attempt): f for f in folders}
        try:
            jobs = self._jobs_named([f.name for f in folders])
        except BackendError:
            return {}
        ids = {
            j.condor_id: wanted[(j.name, j.attempt or 0)] for j in jobs if (j.name, j.attempt or 0) in wanted
        }
        self.folders.record(ids)
        return {folder.name: condor_id for condor_id, folder in ids.items()}

    # ---- status -------------------------------------------------------------------------------------
    def _queue(self) -> dict[str, CondorJob]:
        ads = self.client.query(f'GridpipeAnalysis == "{self.key}"', PROJECTION)
        jobs = (parse_ad(ad) for ad in ads)
        return {j.condor_id: j for j in jobs if j is not None}

    def _history(self, ids: Sequence[str]) -> dict[str, CondorJob]:
        """Jobs that left the queue, in one history call that stops before their submission."""
        clusters = sorted({i.split(".")[0] for i in ids}, key=int)
        linked = [t for t in (self.folders.linked_at(i) for i in ids) if t is not None]
        since = f"EnteredCurrentStatus < {int(min(linked) - HISTORY_MARGIN)}" if linked else None
        constraint = f'GridpipeAnalysis == "{self.key}" && member(ClusterId, {{{", ".join(clusters)}}})'
        ads = self.client.history(constraint, PROJECTION, match=-1, since=since)
        wanted = set(ids)
        jobs = (parse_ad(ad) for ad in ads)
        return {j.condor_id: j for j in jobs if j is not None and j.condor_id in wanted}

    def poll(self, backend_ids: Sequence[str]) -> list[BackendStatus]:
        """One query for the analysis's jobs in the queue, one history call for those that left; then the
        worker's exit record. A job found nowhere is not done: it is left out (reported lost after
        `lost_after` seconds). Ids that are not this analysis's HTCondor jobs are reported failed."""
        ids = [i for i in dict.fromkeys(backend_ids) if is_condor_id(i)]
        jobs = self._queue() if ids else {}
        missing = [i for i in ids if i not in jobs and self.folders.by_id(i) is not None]
        if missing:
            jobs.update(self._history(missing))
        now = time.time()
        self._remove_held(jobs.values(), now)
        out: list[BackendStatus] = []
        for condor_id in dict.fromkeys(backend_ids):
            status = self._status(condor_id, jobs.get(condor_id), now)
            if status is not None:
                out.append(status)
        return out

    def _remove_held(self, jobs: object, now: float) -> None:
        """Remove, in one call, the jobs held for longer than the hold timeout (they are reported failed)."""
        held = [j for j in jobs if held_too_long(j, now, self.settings.hold_timeout)]  # type: ignore[attr-defined]
        if held:
            reason = HELD_TOO_LONG + held[0].hold_reason
            self.client.remove([j.condor_id for j in held], reason[:500])

    def _status(self, condor_id: str, job: CondorJob | None, now: float) -> BackendStatus | None:
        if job is not None and job.state in ACTIVE:  # the query answered for it: no file is read
            return status_of(job, None, now, self.settings.hold_timeout)
        folder = self.folders.by_id(condor_id)
        if folder is None and job is not None and job.attempt is not None:
            folder = self.folders.attempt(job.name, job.attempt)  # this analysis's (by +GridpipeAnalysis)
        if folder is None:
            return BackendStatus(condor_id, JobStatus.FAILED, reason="not an HTCondor job of this analysis")
        if job is not None:
            return status_of(job, folder.exit_record(), now, self.settings.hold_timeout)
        record = folder.exit_record()
        if record is not None:
            return from_record(condor_id, record)
        linked = self.folders.linked_at(condor_id) or now
        if now - linked > self.settings.lost_after:
            return BackendStatus(
                condor_id,
                JobStatus.FAILED,
                reason="HTCondor knows the job neither in its queue nor in its history, and the job worker "
                "left no exit record (see gridpipe logs)",
            )
        return None  # missing from this answer is not an end

    # ---- cancel, lookup, logs ------------------------------------------------------------------------
    def cancel(self, backend_ids: Sequence[str]) -> None:
        """One remove for many ids; jobs that already left the queue are not touched."""
        ids = sorted({i for i in backend_ids if is_condor_id(i) and self.folders.by_id(i)})
        if ids:
            self.client.remove(ids, "gridpipe: cancelled")

    def _jobs_named(self, names: Sequence[str]) -> list[CondorJob]:
        """This analysis's jobs with these names, in the queue and in the history."""
        wanted = sorted(set(names))
        jobs = [j for j in self._queue().values() if j.name in wanted]
        seen = {j.condor_id for j in jobs}
        for start in range(0, len(wanted), NAMES_PER_LOOKUP):
            chunk = wanted[start : start + NAMES_PER_LOOKUP]
            listed = ", ".join(f'"{n}"' for n in chunk if is_safe_name(n))
            if not listed:
                continue
            constraint = f'GridpipeAnalysis == "{self.key}" && member(GridpipeJob, {{{listed}}})'
            for ad in self.client.history(constraint, PROJECTION):
                job = parse_ad(ad)
                if job is not None and job.condor_id not in seen:
                    seen.add(job.condor_id)
                    jobs.append(job)
        return jobs

    def lookup(self, names: Sequence[str]) -> dict[str, list[BackendJob]]:
        """This analysis's jobs with these names (queue and history, by +GridpipeJob), each linked to
        its attempt folder (+GridpipeAttempt)."""
        found: dict[str, list[BackendJob]] = {}
        now = time.time()
        jobs = [j for j in self._jobs_named(names) if j.attempt is not None]
        self.folders.record({j.condor_id: self.folders.attempt(j.name, j.attempt or 0) for j in jobs})
        for job in jobs:
            folder = self.folders.attempt(job.name, job.attempt or 0)
            status = status_of(job, folder.exit_record(), now, self.settings.hold_timeout)
            state = status.status if status is not None else JobStatus.QUEUED
            found.setdefault(job.name, []).append(BackendJob(job.condor_id, job.name, state))
        return found

    def logs(self, backend_id: str) -> dict[str, str]:
        """HTCondor's output and error files of the job, the worker's logs and its exit record."""
        folder = self.folders.by_id(backend_id)
        if folder is None:
            raise BackendError(
                f"{backend_id!r} is not an HTCondor job of this analysis (no job folder links to it)"
            )
        return {path.name: _tail(path) for path in folder.files()}


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size > LOG_LIMIT:
                fh.seek(size - LOG_LIMIT)
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"
