"""Plan every stage on paper, as `submit` and `run` will, so that `check` reports what they would refuse.

Pure: the input lists are handed in; nothing is recorded and no backend or storage is asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import UsageError
from gridpipe.workflow.commands import fill
from gridpipe.workflow.planner import PlanContext, Unit, plan_grid_unit, plan_local_unit, units_of

UNITS_PLANNED_IN_FULL = 20
"""Stages with more units (large sweeps) are planned for a sample: the first, the last and the longest."""

SAMPLE_INPUT = "/gridpipe-check/{particle}/input_run1.h5"
"""A stand-in input for stages fed by earlier stages' outputs (none exist before the run)."""


def plan_problems(
    stages: Sequence[Stage], ctx: PlanContext, lists: Mapping[str, Sequence[str] | None]
) -> list[tuple[str, str]]:
    """(stage name, problem) for everything planning the stages would refuse.

    `lists` maps each input list key to its LFNs, or to None when the list itself is unusable (its own
    problems are reported where the list is read).
    """
    problems: list[tuple[str, str]] = []
    taken: set[str] = set()
    for stage in stages:
        for unit in _sample(units_of(stage)):
            try:
                _plan(stage, unit, ctx, lists, taken)
            except UsageError as exc:
                problems.append((stage.name, exc.detail))
                break  # one problem per stage: the others are most often the same one again
    return problems


def _sample(units: list[Unit]) -> list[Unit]:
    if len(units) <= UNITS_PLANNED_IN_FULL:
        return units
    longest = max(units, key=lambda u: len(u.name))
    return [units[0], longest, units[-1]]


def _plan(
    stage: Stage, unit: Unit, ctx: PlanContext, lists: Mapping[str, Sequence[str] | None], taken: set[str]
) -> None:
    where = f"stage '{stage.name}'"
    if stage.kind == "local":
        taken.add(plan_local_unit(ctx, unit).name)
        return
    if stage.input_list:
        key = fill(stage.input_list, {"particle": unit.particle, "unit": unit.name}, where)
        if key not in lists:
            raise UsageError(
                f"{where} reads input list '{key}', which configs/grid.yaml does not declare; "
                "add it under `inputs`"
            )
        lfns = lists[key]
        if lfns is None:
            return
    else:
        lfns = [SAMPLE_INPUT.format(particle=unit.particle)]
    plan_grid_unit(ctx, unit, lfns, covered=set(), taken=taken)
