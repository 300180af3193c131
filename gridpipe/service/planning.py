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
    enough: int | None = None,
) -> Plan:
    """Jobs for every input not yet covered by a job of the same unit (nothing is written).

    With `enough`, planning stops after the unit that brings the jobs to submit (those whose outputs are
    not all in storage yet) to `enough`: `submit --test` on a 10,000-value sweep plans one unit, not all.
    Each input list is read once, and the store is read once per stage, however many units there are.
    """
    ctx = replace(an.plan_context(), n_file_per_job_override=n_file_per_job)
    plan = Plan()
    units = units_of(stage, particles)
    if not units:
        raise UsageError(
            f"stage '{stage.name}' has no unit for particle(s) {', '.join(particles or [])}; "
            f"its units are: {', '.join(stage.units)}"
        )
    taken = an.store.names()
    if stage.kind == "local":
        planned_units = set(an.store.inputs_by_unit(stage.name))
        plan.new = [plan_local_unit(ctx, u) for u in units if u.name not in planned_units]
        return plan
    covered_by_unit = an.store.inputs_by_unit(stage.name)
    lists: dict[str, list[str]] = {}
    models: list[str] | None = None
    to_submit = 0
    for unit in units:
        if enough is not None and to_submit >= enough:
            break
        _, rel = input_list_path(an, stage, unit)
        lfns = lists[rel] if rel in lists else lists.setdefault(rel, read_list(an.path / rel))
        covered = covered_by_unit.get(unit.name, set())
        if models is None and stage.models and any(lfn not in covered for lfn in lfns):
            models = model_lfns(an, stage)
        specs = plan_grid_unit(ctx, unit, lfns, covered=covered, taken=taken, model_lfns=models or [])
        plan.new += specs
        if enough is not None:
            present = _present(an, specs) if check_storage else set()
            plan.existing_outputs += sorted(present)
            to_submit += sum(1 for spec in specs if not _all_in(spec, present))
    if check_storage and enough is None and plan.new:
        plan.existing_outputs = sorted(_present(an, plan.new))
    return plan


def _present(an: Analysis, specs: Sequence[JobSpec]) -> set[str]:
    """Outputs of these grid jobs that are already in storage (one batch call)."""
    outputs = [lfn for spec in specs if spec.where == "grid" for lfn in spec.outputs]
    return an.storage.exists(outputs) if outputs else set()


def _all_in(spec: JobSpec, present: set[str]) -> bool:
    return spec.where == "grid" and bool(spec.outputs) and set(spec.outputs) <= present


def record_plan(an: Analysis, plan: Plan) -> list[str]:
    """Write planned jobs to the store; jobs whose outputs all exist are recorded as done."""
    added = an.store.add_jobs(plan.new)
    present = set(plan.existing_outputs)
    already = [s.name for s in plan.new if _all_in(s, present)]
    if already:
        an.store.set_status(already, JobStatus.DONE, "output already in storage; not submitted")
    return added
