"""User actions on jobs: submit a stage, resubmit, kill, logs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import (
    JobDoneError,
    JobNotFoundError,
    NothingChosenError,
    StageChoiceError,
    StageNotFoundError,
    UsageError,
)
from gridpipe.core.models import JobSpec
from gridpipe.core.states import ACTIVE_STATES, FINAL_STATES, JobStatus
from gridpipe.service.context import Analysis
from gridpipe.service.planning import Plan, plan_units, record_plan
from gridpipe.service.rerun import invalidate_after
from gridpipe.service.submission import SubmitReport, reconcile, submission_lock, submit
from gridpipe.store import JobRecord

WAITING = (JobStatus.PLANNED, JobStatus.SUBMITTING)
"""Jobs recorded but not (knowingly) on a backend yet: what a submit takes first."""


@dataclass
class SubmitOutcome:
    """A stage's plan and, unless dry-run, what was submitted."""

    stage: str
    plan: Plan
    to_submit: list[JobSpec] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    report: SubmitReport | None = None
    already_planned: list[str] = field(default_factory=list)
    """Jobs of the stage planned before this command (by `--test`, `--max-jobs`, `run`, ...)."""


def select_stage(an: Analysis, name: str | None, output_type: str | None, estimate_energy: bool) -> Stage:
    """The stage named, or the one with this output type (and estimate_energy for TRAINING)."""
    if name:
        try:
            return an.workflow.stage(name)
        except KeyError:
            raise StageNotFoundError(name, [s.name for s in an.workflow.stages]) from None
    if not output_type:
        raise StageChoiceError(None, estimate_energy, [])
    matches = [s for s in an.workflow.stages if (s.output_type or "").upper() == output_type.upper()]
    if output_type.upper() == "TRAINING":
        matches = [s for s in matches if s.estimate_energy == estimate_energy]
    if len(matches) != 1:
        raise StageChoiceError(output_type, estimate_energy, [s.name for s in matches])
    return matches[0]


def submit_stage(
    an: Analysis,
    stage: Stage,
    particles: Sequence[str] | None,
    *,
    dry_run: bool,
    limit: int | None,
    n_file_per_job: int | None,
    test: bool = False,
) -> SubmitOutcome:
    """Plan the stage's jobs, skip those whose outputs exist, submit up to `limit` of the jobs waiting.

    `choose_jobs` makes the choice for both the dry run and the real command, so a dry run lists exactly
    the jobs the same command without --dry-run submits (jobs planned earlier included). With `test`,
    exactly one job is submitted and only the units needed for it are planned (a stage with a 10,000-value
    sweep plans one unit, not 10,000); otherwise every unit is planned and recorded.
    """
    if not dry_run:
        an.backend_of_stage(stage).preflight()  # e.g. the DIRAC token, before anything is recorded
    if test:
        limit = 1
    cap = limit if limit is not None else (an.grid.jobs.n_jobs_max if an.grid.jobs.n_jobs_max > 0 else None)
    units = _units(stage, particles) if particles is not None else None
    enough = None
    if test:  # a job already waiting is the one submitted; else plan units until one has a job to submit
        enough = 0 if an.store.count(stage=stage.name, units=units, statuses=WAITING, limit=1) else 1
    plan = plan_units(an, stage, particles, n_file_per_job=n_file_per_job, enough=enough)
    waiting, chosen, skipped = choose_jobs(an, stage, units, plan, cap)
    if dry_run:
        return SubmitOutcome(stage.name, plan, chosen, skipped, already_planned=waiting)
    record_plan(an, plan)
    with submission_lock(an):
        recovered = reconcile(an)  # a crashed submit's jobs: adopted, or planned again (and submitted below)
    report = submit(an, [spec.name for spec in chosen])
    report.adopted.update(recovered.adopted)
    return SubmitOutcome(stage.name, plan, chosen, skipped, report, already_planned=waiting)


def choose_jobs(
    an: Analysis, stage: Stage, units: Collection[str] | None, plan: Plan, cap: int | None
) -> tuple[list[str], list[JobSpec], list[str]]:
    """(names of jobs already waiting, jobs to submit, names skipped because their outputs exist).

    The jobs to submit are the stage's jobs already waiting in the store (planned, or left `submitting`
    by an interrupted submit: those are looked up on the backend first and adopted if it has them), in
    the order they were planned, then the new jobs of `plan`; at most `cap` of them. Nothing is written.
    """
    waiting = [j.spec for j in an.store.jobs(stage=stage.name, units=units, statuses=WAITING, limit=cap)]
    present = set(plan.existing_outputs)
    exists = {s.name for s in plan.new if s.outputs and s.where == "grid" and set(s.outputs) <= present}
    fresh = [s for s in plan.new if s.name not in exists]
    chosen = waiting + fresh
    return (
        [s.name for s in waiting],
        chosen[:cap] if cap else chosen,
        [s.name for s in plan.new if s.name in exists],
    )


def _units(stage: Stage, particles: Sequence[str]) -> set[str]:
    from gridpipe.workflow.planner import units_of

    return {u.name for u in units_of(stage, particles)}


def _named(an: Analysis, names: Sequence[str]) -> dict[str, JobRecord]:
    found = an.store.get(names)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise JobNotFoundError(unknown)
    return found


@dataclass
class ResubmitReport:
    """What `resubmit` did: the submission, and the units it made stale (done jobs run again)."""

    submission: SubmitReport
    stale: list[tuple[str, str]] = field(default_factory=list)


def resubmit(an: Analysis, names: Sequence[str], *, failed: bool, done: bool = False) -> ResubmitReport:
    """New attempts for failed/killed jobs (named, or all with `failed`); done jobs only with `done`.

    Running a done job again invalidates what was made from its outputs: its unit is gathered (or
    uploaded) again, and the started units of later stages are marked stale for `run` to redo.
    """
    if not names and not failed:
        raise NothingChosenError("resubmit")
    jobs = list(_named(an, names).values()) if names else []
    if failed:
        jobs += an.store.jobs(statuses=[JobStatus.FAILED, JobStatus.KILLED])
    busy = [j.name for j in jobs if j.status in ACTIVE_STATES]
    if busy:
        raise UsageError(f"job(s) still active: {', '.join(busy[:5])}; kill them first or wait")
    finished = [j for j in jobs if j.status == JobStatus.DONE]
    if finished and not done:
        raise JobDoneError(sorted({j.name for j in finished}))
    todo = sorted({j.name for j in jobs if j.status in FINAL_STATES | {JobStatus.PLANNED}})
    stale = invalidate_after(an, finished)
    an.store.reset_attempts(todo)
    an.store.set_status(todo, JobStatus.PLANNED, "resubmitted by the user")
    return ResubmitReport(submit(an, todo), stale)


@dataclass
class KillReport:
    """What `kill` did: the jobs it killed, and named jobs it left alone because they had already ended."""

    killed: list[str] = field(default_factory=list)
    ended: dict[str, JobStatus] = field(default_factory=dict)


def kill(an: Analysis, names: Sequence[str], *, stage: str | None, all_jobs: bool) -> KillReport:
    """Cancel active jobs on their backends and mark planned ones killed.

    The jobs are refreshed from their backends first, and asked again after the kill which of them were
    done before it arrived: those keep their real state (and their outputs) instead of being marked killed.
    """
    from gridpipe.service.refresh import apply_polled, refresh

    if not names and not stage and not all_jobs:
        raise NothingChosenError("kill")
    if names:
        _named(an, names)  # unknown names are refused before anything happens
    refresh(an)
    wanted = {JobStatus.PLANNED, *ACTIVE_STATES}
    jobs = list(an.store.get(names).values()) if names else an.store.jobs(stage=stage, statuses=wanted)
    report = KillReport(ended={j.name: j.status for j in jobs if j.status not in wanted})
    jobs = [j for j in jobs if j.status in wanted]
    by_backend: dict[str, list[str]] = {}
    for job in jobs:
        if job.status in ACTIVE_STATES and job.backend_id:
            by_backend.setdefault(job.backend or "", []).append(job.backend_id)
    for backend_name, ids in by_backend.items():
        an.backend_named(backend_name).cancel(ids)
        # a job that was done before the kill reached its backend keeps that state (and its outputs)
        apply_polled(an, backend_name, ids, only={JobStatus.DONE})
    report.killed = an.store.set_status(
        [j.name for j in jobs], JobStatus.KILLED, "killed by the user", only_from=wanted
    )
    if len(report.killed) < len(jobs):  # killed by the backend already (seen by the refresh), or ended
        current = an.store.get([j.name for j in jobs if j.name not in report.killed])
        report.killed += [name for name, job in current.items() if job.status == JobStatus.KILLED]
        report.ended.update({n: job.status for n, job in current.items() if job.status != JobStatus.KILLED})
    return report


@dataclass
class JobLogs:
    """A job's captured output (stream name -> text) and what the store knows of how it ended."""

    name: str
    status: JobStatus
    reason: str | None
    streams: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No stream holds any text (e.g. the job failed while staging its inputs)."""
        return not any(self.streams.values())


def job_logs(an: Analysis, name: str) -> JobLogs:
    """Captured output of the job's last attempt, with the stored status and reason."""
    job = an.store.get([name]).get(name)
    if job is None:
        raise JobNotFoundError([name])
    if not job.backend_id or not job.backend:
        why = f": {job.reason}" if job.reason else ""
        raise UsageError(f"job {name} has not been submitted yet (status {job.status}{why})")
    streams = an.backend_named(job.backend).logs(job.backend_id)
    return JobLogs(name, job.status, job.reason, streams)
