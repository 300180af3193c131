"""Plan a stage's jobs from its input lists (or earlier outputs) into the job store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gridpipe.analysis.lists import read_list
from gridpipe.analysis.naming import join_lfn
from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import ConfigError, ModelsMissingError, UsageError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.workflow.commands import fill
from gridpipe.workflow.planner import Unit, plan_grid_unit, plan_local_unit, units_of


@dataclass
class Plan:
    """New jobs of a planning round, and jobs skipped because their outputs already exist."""

    new: list[JobSpec] = field(default_factory=list)
    existing_outputs: list[str] = field(default_factory=list)


def input_list_path(an: Analysis, stage: Stage, unit: Unit) -> tuple[str, str]:
    """(list key, path relative to the analysis) of a grid unit's input list."""
    key = fill(
        stage.input_list or "", {"particle": unit.particle, "unit": unit.name}, f"stage '{stage.name}'"
    )
    if key not in an.grid.inputs:
        raise ConfigError(
            an.path / "configs" / "grid.yaml",
            f"stage '{stage.name}' reads input list '{key}', which is not declared; add it under `inputs`",
            key="inputs",
        )
    return key, an.grid.inputs[key]


def model_lfns(an: Analysis, stage: Stage) -> list[str]:
    """LFNs of the uploaded models a stage's jobs need."""
    lfns: list[str] = []
    for model_stage in (an.workflow.stage(name) for name in stage.models):
        folder = join_lfn(an.grid_dir, model_stage.outdir or model_stage.name)
        found = [info.lfn for info in an.storage.list(folder)]
        if not found:
            raise ModelsMissingError(stage.name, model_stage.name, folder)
        lfns += found
    return lfns


def plan_units(
    an: Analysis,
    stage: Stage,
    particles: Sequence[str] | None = None,
    *,
    n_file_per_job: int | None = None,
    check_storage: bool = True,
) -> Plan:
    """Jobs for every input not yet covered by a job of the same unit (nothing is written)."""
    ctx = replace(an.plan_context(), n_file_per_job_override=n_file_per_job)
    plan = Plan()
    units = units_of(stage, particles)
    if not units:
        raise UsageError(
            f"stage '{stage.name}' has no unit for particle(s) {', '.join(particles or [])}; "
            f"its units are: {', '.join(stage.units)}"
        )
    taken = {row[0] for row in an.store.summary_rows()}
    for unit in units:
        existing = an.store.jobs(stage=stage.name, unit=unit.name)
        if stage.kind == "local":
            if not existing:
                plan.new.append(plan_local_unit(ctx, unit))
            continue
        _, rel = input_list_path(an, stage, unit)
        lfns = read_list(an.path / rel)
        covered = {lfn for job in existing for lfn in job.spec.inputs}
        models = model_lfns(an, stage) if stage.models and any(lfn not in covered for lfn in lfns) else []
        plan.new += plan_grid_unit(ctx, unit, lfns, covered=covered, taken=taken, model_lfns=models)
    if check_storage and plan.new:
        outputs = [lfn for spec in plan.new if spec.where == "grid" for lfn in spec.outputs]
        present = an.storage.exists(outputs) if outputs else set()
        plan.existing_outputs = sorted(present)
    return plan


def record_plan(an: Analysis, plan: Plan) -> list[str]:
    """Write planned jobs to the store; jobs whose outputs all exist are recorded as done."""
    added = an.store.add_jobs(plan.new)
    present = set(plan.existing_outputs)
    already = [s.name for s in plan.new if s.where == "grid" and s.outputs and set(s.outputs) <= present]
    if already:
        an.store.set_status(already, JobStatus.DONE, "output already in storage; not submitted")
    return added
