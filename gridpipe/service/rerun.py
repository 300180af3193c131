"""What running a finished job again invalidates: its unit's gathered or uploaded results, and every
started unit of the stages that consumed its stage's outputs (marked stale until `run` redoes them)."""

from __future__ import annotations

from collections.abc import Sequence

from gridpipe.core.states import FINAL_STATES, JobStatus, UnitState
from gridpipe.service.context import Analysis
from gridpipe.store import JobRecord
from gridpipe.workflow.planner import Unit, units_of
from gridpipe.workflow.progress import downstream

_FINISHED = (UnitState.GATHERED, UnitState.UPLOADED)


def invalidate_after(an: Analysis, done: Sequence[JobRecord]) -> list[tuple[str, str]]:
    """Before done jobs run again: their units are to be gathered (or uploaded) again, and every started
    unit of the stages downstream of theirs is marked stale. Returns the (stage, unit) marked stale."""
    if not done:
        return []
    markers = an.store.unit_states()
    for key in sorted({(job.stage, job.unit) for job in done}):
        if markers.get(key) in _FINISHED:
            an.store.set_stage_state(*key, UnitState.PLANNED, "a done job of the unit is run again")
    started = set(markers) | {(s, u) for s, units in an.store.counts().items() for u in units}
    stages = sorted({job.stage for job in done})
    why = f"stage(s) {', '.join(stages)} run again"
    stale: list[tuple[str, str]] = []
    for stage in downstream(an.workflow.stages, stages):
        for unit in units_of(stage):
            key = (stage.name, unit.name)
            if key in started and markers.get(key) != UnitState.STALE:
                an.store.set_stage_state(*key, UnitState.STALE, why)
            if key in started:
                stale.append(key)
    return stale


def rerun_stale_unit(an: Analysis, unit: Unit) -> list[str]:
    """A stale unit whose earlier stages are complete again: its finished jobs go back to planned (with a
    fresh retry budget) and its marker to planned, so it is run, gathered or uploaded again."""
    jobs = an.store.jobs(stage=unit.stage.name, unit=unit.name, statuses=FINAL_STATES)
    names = [job.name for job in jobs]
    an.store.reset_attempts(names)
    again = an.store.set_status(
        names, JobStatus.PLANNED, "run again: an earlier stage was re-run", only_from=FINAL_STATES
    )
    an.store.set_stage_state(unit.stage.name, unit.name, UnitState.PLANNED, f"{len(again)} job(s) run again")
    return again
