"""User actions on jobs: submit a stage, resubmit, kill, logs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import (
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
from gridpipe.service.submission import SubmitReport, reconcile, submission_lock, submit
from gridpipe.store import JobRecord

PLANNED = JobStatus.PLANNED


@dataclass
class SubmitOutcome:
    """A stage's plan and, unless dry-run, what was submitted."""

    stage: str
    plan: Plan
    to_submit: list[JobSpec] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    report: SubmitReport | None = None


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
    """Plan the stage's jobs, skip those whose outputs exist or that are active, submit up to `limit`.

    With `test`, exactly one job is submitted and only the units needed for it are planned (a stage with a
    10,000-value sweep plans one unit, not 10,000); otherwise every unit is planned and recorded.
    """
    if not dry_run:
        an.backend_of_stage(stage).preflight()  # e.g. the DIRAC token, before anything is recorded
    if test:
        limit = 1
    cap = limit if limit is not None else (an.grid.jobs.n_jobs_max if an.grid.jobs.n_jobs_max > 0 else None)
    units = _units(stage, particles) if particles is not None else None
    enough = None
    if test:  # a job already planned is the one submitted; else plan units until one has a job to submit
        enough = 0 if an.store.count(stage=stage.name, units=units, statuses=[PLANNED], limit=1) else 1
    plan = plan_units(an, stage, particles, n_file_per_job=n_file_per_job, enough=enough)
    present = set(plan.existing_outputs)
    fresh: list[JobSpec] = []
    skipped: list[str] = []
    for spec in plan.new:
        exists = bool(spec.outputs) and spec.where == "grid" and set(spec.outputs) <= present
        if exists:
            skipped.append(spec.name)
        else:
            fresh.append(spec)
    if dry_run:
        return SubmitOutcome(stage.name, plan, fresh[:cap] if cap else fresh, skipped)
    record_plan(an, plan)
    with submission_lock(an):
        recovered = reconcile(an)  # a crashed submit's jobs: adopted, or planned again (and chosen below)
    chosen = an.store.jobs(stage=stage.name, units=units, statuses=[PLANNED], limit=cap)
    report = submit(an, [j.name for j in chosen])
    report.adopted.update(recovered.adopted)
    return SubmitOutcome(stage.name, plan, [j.spec for j in chosen], skipped, report)


def _units(stage: Stage, particles: Sequence[str]) -> set[str]:
    from gridpipe.workflow.planner import units_of

    return {u.name for u in units_of(stage, particles)}


def _named(an: Analysis, names: Sequence[str]) -> dict[str, JobRecord]:
    found = an.store.get(names)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise JobNotFoundError(unknown)
    return found


def resubmit(an: Analysis, names: Sequence[str], *, failed: bool) -> SubmitReport:
    """New attempts for failed/killed jobs (named, or all with `failed`)."""
    if not names and not failed:
        raise NothingChosenError("resubmit")
    jobs = list(_named(an, names).values()) if names else []
    if failed:
        jobs += an.store.jobs(statuses=[JobStatus.FAILED, JobStatus.KILLED])
    busy = [j.name for j in jobs if j.status in ACTIVE_STATES]
    if busy:
        raise UsageError(f"job(s) still active: {', '.join(busy[:5])}; kill them first or wait")
    todo = sorted({j.name for j in jobs if j.status in FINAL_STATES | {JobStatus.PLANNED}})
    an.store.reset_attempts(todo)
    an.store.set_status(todo, JobStatus.PLANNED, "resubmitted by the user")
    return submit(an, todo)


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


def job_logs(an: Analysis, name: str) -> dict[str, str]:
    """Captured output of the job's last attempt."""
    job = an.store.get([name]).get(name)
    if job is None:
        raise JobNotFoundError([name])
    if not job.backend_id or not job.backend:
        raise UsageError(f"job {name} has not been submitted yet (status {job.status})")
    return an.backend_named(job.backend).logs(job.backend_id)
