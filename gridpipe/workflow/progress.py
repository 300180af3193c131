"""How far an analysis has come, decided from a snapshot of counts: pure functions, no I/O.

The orchestrator takes a `Snapshot` (jobs per status and the progress marker of every unit) from the
job store and asks these functions what is complete, what is ready, what to plan, gather or upload,
and whether the run can still progress.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gridpipe.analysis.stage import Stage
from gridpipe.core.states import ACTIVE_STATES, JobStatus, UnitState
from gridpipe.workflow.planner import Unit, units_of

BUSY_STATES = frozenset({*ACTIVE_STATES, JobStatus.PLANNED})
"""Jobs that will still move without anyone's help."""


@dataclass(frozen=True)
class UnitProgress:
    """One unit: its jobs by status, and its progress marker beyond them (None: not planned yet)."""

    state: UnitState | None = None
    jobs: Mapping[JobStatus, int] = field(default_factory=dict)

    def count(self, statuses: Iterable[JobStatus]) -> int:
        """Jobs in any of `statuses`."""
        return sum(self.jobs.get(s, 0) for s in statuses)

    @property
    def all_done(self) -> bool:
        """The unit has jobs and every one of them is done."""
        return any(self.jobs.values()) and all(n == 0 or s == JobStatus.DONE for s, n in self.jobs.items())


_NOT_STARTED = UnitProgress()


@dataclass(frozen=True)
class Snapshot:
    """Progress of every unit, keyed by (stage name, unit name); units not listed have not started."""

    units: Mapping[tuple[str, str], UnitProgress] = field(default_factory=dict)

    @classmethod
    def of(
        cls, counts: Mapping[str, Mapping[str, Mapping[str, int]]], states: Mapping[tuple[str, str], str]
    ) -> Snapshot:
        """From the store's `{stage: {unit: {status: n}}}` and `{(stage, unit): marker}`."""
        keys = {(s, u) for s, by_unit in counts.items() for u in by_unit} | set(states)
        units = {}
        for stage, unit in keys:
            jobs = {JobStatus(k): n for k, n in counts.get(stage, {}).get(unit, {}).items()}
            marker = states.get((stage, unit))
            units[(stage, unit)] = UnitProgress(UnitState(marker) if marker else None, jobs)
        return cls(units)

    def unit(self, unit: Unit) -> UnitProgress:
        """Progress of one unit."""
        return self.units.get((unit.stage.name, unit.name), _NOT_STARTED)


class NextStep(StrEnum):
    """What a unit needs next from the orchestrator (beyond submitting and refreshing its jobs)."""

    NOTHING = "nothing"
    PLAN = "plan"
    GATHER = "gather"
    UPLOAD = "upload"
    RERUN = "rerun"


def unit_complete(unit: Unit, progress: UnitProgress) -> bool:
    """A grid unit is complete once gathered; a local one once every job is done (and uploaded if it
    uploads); a stale unit never is."""
    if progress.state == UnitState.STALE:
        return False
    if unit.stage.kind == "grid":
        return progress.state == UnitState.GATHERED
    if unit.stage.upload:
        return progress.state == UnitState.UPLOADED
    return progress.all_done


def stage_complete(stage: Stage, snapshot: Snapshot) -> bool:
    """Every unit of the stage is complete."""
    return all(unit_complete(u, snapshot.unit(u)) for u in units_of(stage))


def ready_stages(stages: Sequence[Stage], snapshot: Snapshot) -> list[Stage]:
    """Incomplete stages whose needs are all complete, in workflow order."""
    complete = {s.name for s in stages if stage_complete(s, snapshot)}
    return [s for s in stages if s.name not in complete and all(n in complete for n in s.needs)]


def next_step(unit: Unit, progress: UnitProgress) -> NextStep:
    """Plan a unit not planned yet; gather a grid unit, or upload a local one that uploads, once all its
    jobs are done; run a stale unit's jobs again once none of them is still on its way; otherwise
    nothing (its jobs are still on their way, or it is complete)."""
    if progress.state is None:
        return NextStep.PLAN
    if progress.state == UnitState.STALE:
        return NextStep.NOTHING if progress.count(BUSY_STATES) else NextStep.RERUN
    if not progress.all_done:
        return NextStep.NOTHING
    if unit.stage.kind == "grid" and progress.state != UnitState.GATHERED:
        return NextStep.GATHER
    if unit.stage.kind == "local" and unit.stage.upload and progress.state != UnitState.UPLOADED:
        return NextStep.UPLOAD
    return NextStep.NOTHING


def downstream(stages: Sequence[Stage], changed: Iterable[str]) -> list[Stage]:
    """Stages that consume, directly or through other stages, the outputs of the stages `changed`
    (through `needs` or `models`), in workflow order; the changed stages themselves are not listed."""
    changed = set(changed)
    affected: set[str] = set()
    for stage in stages:  # workflow order: a stage comes after the stages it needs
        if {*stage.needs, *stage.models} & (changed | affected):
            affected.add(stage.name)
    return [s for s in stages if s.name in affected and s.name not in changed]


def units_to_plan(stage: Stage, snapshot: Snapshot) -> list[Unit]:
    """Units of the stage not planned yet."""
    return [u for u in units_of(stage) if next_step(u, snapshot.unit(u)) is NextStep.PLAN]


def stalled(stages: Sequence[Stage], snapshot: Snapshot) -> bool:
    """The ready stages cannot progress: none of their jobs is planned or active, and some failed for
    good or were killed (only a person can help: resubmit, or fix the cause)."""
    names = {s.name for s in stages}
    progress = [p for (stage, _), p in snapshot.units.items() if stage in names]
    if any(p.count(BUSY_STATES) for p in progress):
        return False
    return any(p.count((JobStatus.FAILED, JobStatus.KILLED)) for p in progress)
