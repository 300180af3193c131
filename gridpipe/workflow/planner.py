"""Plan jobs of a stage's units: pure logic from lists, settings and what already exists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridpipe.analysis.naming import file_name_problem, job_name_problem, join_lfn
from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import UsageError
from gridpipe.core.models import JobSpec
from gridpipe.payloads.contract import payload_named
from gridpipe.workflow.commands import compile_commands, expand_commands, fill
from gridpipe.workflow.splitter import splitter_named


@dataclass(frozen=True)
class PlanContext:
    """Analysis-wide values every plan needs."""

    analysis: str
    analysis_path: Path
    grid_dir: str
    mode: str
    payload: str
    python: str
    n_file_per_job: int
    merged: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    n_file_per_job_override: int | None = None
    stage_python: Mapping[str, str] = field(default_factory=dict)
    """`{python}` of the stages whose backend runs jobs with another interpreter than `python`."""


@dataclass(frozen=True)
class Unit:
    """A stage for one particle (and one sweep value)."""

    stage: Stage
    name: str
    particle: str
    sweep_value: str | int | float | None = None


def units_of(stage: Stage, particles: Sequence[str] | None = None) -> list[Unit]:
    """The units of a stage, optionally only those of some particles (or with those unit names)."""
    out: list[Unit] = []
    for particle in stage.units:
        if stage.sweep is None:
            out.append(Unit(stage, particle, particle))
        else:
            out += [Unit(stage, f"{particle}-{stage.sweep.name}{v}", particle, v) for v in stage.sweep.values]
    if particles:
        out = [u for u in out if u.particle in particles or u.name in particles]
    return out


def output_dir_lfn(ctx: PlanContext, stage: Stage, particle: str) -> str:
    """Where the outputs of a grid stage's unit live on the grid."""
    return join_lfn(ctx.grid_dir, "data", stage.data_type or stage.name, particle)


def unit_values(ctx: PlanContext, unit: Unit) -> dict[str, object]:
    values: dict[str, object] = {
        "analysis": ctx.analysis,
        "particle": unit.particle,
        "unit": unit.name,
        "mode": ctx.mode,
        "python": ctx.stage_python.get(unit.stage.name, ctx.python),
        "analysis_path": str(ctx.analysis_path),
        "configs": str(ctx.analysis_path / "configs"),
        "merged": ctx.merged,
    }
    if unit.stage.sweep is not None and not unit.stage.sweep.env:
        values[unit.stage.sweep.name] = unit.sweep_value
    return values


def _env(unit: Unit) -> dict[str, str]:
    sweep = unit.stage.sweep
    return {sweep.name: str(unit.sweep_value)} if sweep is not None and sweep.env else {}


def _check_name(name: str, stage: Stage) -> str:
    problem = job_name_problem(name)
    if problem:
        raise UsageError(
            f"stage '{stage.name}': job name {name[:140]!r} {problem}; fix the stage's job_name template "
            "(or shorten the analysis name)"
        )
    return name


def checked_file_name(name: str, stage: Stage, key: str) -> str:
    """`name` (a filled-in `output` or `merged` template), or UsageError when it is not one safe file name."""
    problem = file_name_problem(name)
    if problem:
        raise UsageError(
            f"stage '{stage.name}': {key} {name[:140]!r} {problem}; fix the stage's {key} template"
        )
    return name


def plan_grid_unit(
    ctx: PlanContext,
    unit: Unit,
    lfns: Sequence[str],
    *,
    covered: set[str],
    taken: set[str],
    model_lfns: Sequence[str] = (),
) -> list[JobSpec]:
    """Jobs for input files not yet covered by a job; names never collide with `taken` ones."""
    stage = unit.stage
    where = f"stage '{stage.name}'"
    remaining = [lfn for lfn in lfns if lfn not in covered]
    per_job = ctx.n_file_per_job_override or stage.n_file_per_job or ctx.n_file_per_job
    values = unit_values(ctx, unit)
    out_dir = output_dir_lfn(ctx, stage, unit.particle)
    sandbox = tuple(str(ctx.analysis_path / rel) for rel in stage.sandbox)
    templates = compile_commands(_templates(stage, ctx.payload), where)
    model_names = [lfn.rsplit("/", 1)[-1] for lfn in model_lfns]
    specs: list[JobSpec] = []
    for batch in splitter_named(stage.splitter).split(remaining, per_job):
        scope = {**values, "token": batch.token}
        name = fill(stage.job_name, scope, where)
        suffix = 1
        while name in taken:
            suffix += 1
            name = fill(stage.job_name, {**scope, "token": f"{batch.token}-b{suffix}"}, where)
            scope["token"] = f"{batch.token}-b{suffix}"
        taken.add(_check_name(name, stage))
        output = checked_file_name(fill(stage.output or "", scope, where), stage, "output")
        inputs = [lfn.rsplit("/", 1)[-1] for lfn in batch.lfns]
        if len({*inputs, *model_names}) != len(inputs) + len(model_names):
            raise UsageError(
                f"{where}: two inputs of job {name} share a file name; inputs are staged by name"
            )
        commands = expand_commands(templates, {**scope, "output": output}, inputs, where)
        specs.append(
            JobSpec(
                name=name,
                stage=stage.name,
                unit=unit.name,
                commands=commands,
                inputs=(*batch.lfns, *model_lfns),
                outputs=(join_lfn(out_dir, output),),
                sandbox=sandbox,
                env=_env(unit),
                where="grid",
                backend=stage.backend,
                payload=ctx.payload,
            )
        )
    return specs


def plan_local_unit(ctx: PlanContext, unit: Unit) -> JobSpec:
    """The one job of a local stage's unit (model building, performance)."""
    stage = unit.stage
    where = f"stage '{stage.name}'"
    outdir = ctx.analysis_path / (stage.outdir or stage.name)
    scope = {**unit_values(ctx, unit), "outdir": str(outdir), "token": unit.name}
    name = _check_name(fill(stage.job_name, scope, where), stage)
    commands = expand_commands(compile_commands(_templates(stage, ctx.payload), where), scope, [], where)
    return JobSpec(
        name=name,
        stage=stage.name,
        unit=unit.name,
        commands=commands,
        outputs=(str(outdir),),
        env=_env(unit),
        where="local",
        backend=stage.backend,
        payload=ctx.payload,
    )


def _templates(stage: Stage, payload: str) -> list[str]:
    try:
        return payload_named(payload).commands(stage.name, stage.command)
    except KeyError:
        raise UsageError(
            f"stage '{stage.name}' has no command for payload '{payload}'; add one to "
            "configs/workflow.yaml or choose another payload in configs/grid.yaml"
        ) from None
