"""The orchestrator's decisions, tested directly on snapshots of counts (no store, no process, no backend)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridpipe.analysis.stage import Stage
from gridpipe.core.states import JobStatus, UnitState
from gridpipe.workflow.planner import units_of
from gridpipe.workflow.policy import free_slots, idle_wait, split_failures, wake_when_active_at_most
from gridpipe.workflow.progress import (
    NextStep,
    Snapshot,
    UnitProgress,
    next_step,
    ready_stages,
    stage_complete,
    stalled,
    unit_complete,
    units_to_plan,
)

DONE, FAILED, KILLED = JobStatus.DONE, JobStatus.FAILED, JobStatus.KILLED
PLANNED, QUEUED, RUNNING, SUBMITTING = (
    JobStatus.PLANNED,
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.SUBMITTING,
)


def grid(
    name: str, needs: tuple[str, ...] = (), units: tuple[str, ...] = ("gamma",), **extra: object
) -> Stage:
    return Stage(
        name=name,
        needs=list(needs),
        units=list(units),
        input_list="{particle}_in",
        data_type=name.upper(),
        job_name="{analysis}_" + name + "_{unit}_{token}",
        output=name + "_{unit}_{token}.h5",
        command=["run {inputs}"],
        **extra,
    )


def local(name: str, needs: tuple[str, ...] = (), upload: bool = False) -> Stage:
    return Stage(
        name=name,
        kind="local",
        needs=list(needs),
        units=["all"],
        outdir=f"out/{name}",
        upload=upload,
        job_name="{analysis}_" + name,
        command=["build {outdir}"],
    )


def snap(**units: UnitProgress) -> Snapshot:
    """Snapshot from keyword `stage__unit=UnitProgress(...)` (the unit name may hold '-' as '_')."""
    out = {}
    for key, progress in units.items():
        stage, unit = key.split("__")
        out[(stage, unit.replace("_cut", "-cut"))] = progress
    return Snapshot(out)


def P(state: UnitState | None = UnitState.PLANNED, **jobs: int) -> UnitProgress:
    return UnitProgress(state, {JobStatus(k): n for k, n in jobs.items()})


GATHERED, UPLOADED = UnitState.GATHERED, UnitState.UPLOADED


# ---- the snapshot -----------------------------------------------------------------------------------------


def test_snapshot_from_the_store_counts_and_markers():
    counts = {"train": {"gamma": {"done": 3, "failed": 1}}, "dl2": {"proton": {"planned": 2}}}
    states = {("train", "gamma"): "gathered", ("model", "all"): "uploaded"}
    snapshot = Snapshot.of(counts, states)
    assert snapshot.units[("train", "gamma")] == UnitProgress(GATHERED, {DONE: 3, FAILED: 1})
    assert snapshot.units[("dl2", "proton")] == UnitProgress(None, {PLANNED: 2})
    assert snapshot.units[("model", "all")] == UnitProgress(UPLOADED, {})
    assert snapshot.unit(units_of(grid("other"))[0]) == UnitProgress()  # never seen: not started


def test_unknown_status_or_marker_in_the_store_is_an_error_not_a_guess():
    with pytest.raises(ValueError):
        Snapshot.of({"s": {"u": {"lost": 1}}}, {})
    with pytest.raises(ValueError):
        Snapshot.of({}, {("s", "u"): "halfway"})


@pytest.mark.parametrize(
    ("jobs", "all_done"),
    [({}, False), ({"done": 0}, False), ({"done": 2}, True), ({"done": 2, "failed": 0}, True)],
)
def test_all_done_needs_at_least_one_job(jobs, all_done):
    assert P(**jobs).all_done is all_done


# ---- complete -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "progress", "complete"),
    [
        (grid("t"), P(GATHERED, done=3), True),
        (grid("t"), P(done=3), False),  # every job done, not gathered yet
        (grid("t"), P(None), False),  # not planned
        (grid("t"), P(GATHERED), True),  # the marker decides for grid units
        (local("m"), P(done=1), True),
        (local("m"), P(done=1, failed=1), False),
        (local("m"), P(), False),  # zero jobs is not complete
        (local("m", upload=True), P(done=1), False),  # done, not uploaded yet
        (local("m", upload=True), P(UPLOADED, done=1), True),
    ],
)
def test_unit_complete(stage, progress, complete):
    (unit,) = units_of(stage)
    assert unit_complete(unit, progress) is complete


def test_a_sweep_stage_is_complete_only_when_every_value_is():
    stage = grid("scan", sweep={"name": "cut", "values": [1, 2]})
    assert [u.name for u in units_of(stage)] == ["gamma-cut1", "gamma-cut2"]
    half = snap(scan__gamma_cut1=P(GATHERED, done=1), scan__gamma_cut2=P(running=1))
    assert not stage_complete(stage, half)
    whole = snap(scan__gamma_cut1=P(GATHERED, done=1), scan__gamma_cut2=P(GATHERED, done=1))
    assert stage_complete(stage, whole)


# ---- ready ----------------------------------------------------------------------------------------------------


CHAIN = [
    grid("train", units=("gamma", "proton")),
    local("model", needs=("train",), upload=True),
    grid("dl2", needs=("model",)),
    local("perf", needs=("dl2",)),
    grid("side"),  # no needs: runs alongside the chain
]


def test_at_the_start_every_stage_without_needs_is_ready():
    assert [s.name for s in ready_stages(CHAIN, Snapshot())] == ["train", "side"]


def test_a_stage_waits_for_every_unit_of_what_it_needs():
    one_unit = snap(train__gamma=P(GATHERED, done=2), train__proton=P(done=1, running=1))
    assert [s.name for s in ready_stages(CHAIN, one_unit)] == ["train", "side"]
    both = snap(train__gamma=P(GATHERED, done=2), train__proton=P(GATHERED, done=2))
    assert [s.name for s in ready_stages(CHAIN, both)] == ["model", "side"]


def test_uploaded_models_open_the_next_stage_and_the_chain_ends_complete():
    base = {"train__gamma": P(GATHERED), "train__proton": P(GATHERED), "side__gamma": P(GATHERED)}
    built = snap(**base, model__all=P(done=1))  # built, not uploaded: dl2 still waits
    assert [s.name for s in ready_stages(CHAIN, built)] == ["model"]
    uploaded = snap(**base, model__all=P(UPLOADED, done=1))
    assert [s.name for s in ready_stages(CHAIN, uploaded)] == ["dl2"]
    everything = snap(
        **base, model__all=P(UPLOADED, done=1), dl2__gamma=P(GATHERED, done=4), perf__all=P(done=1)
    )
    assert ready_stages(CHAIN, everything) == []


def test_an_empty_workflow_is_complete_at_once():
    assert ready_stages([], Snapshot()) == []


@given(st.dictionaries(st.sampled_from(["train", "model", "dl2", "perf", "side"]), st.booleans()))
def test_ready_means_incomplete_with_every_need_complete(complete_by_stage):
    progress = {}
    for stage in CHAIN:
        done = complete_by_stage.get(stage.name, False)
        for unit in units_of(stage):
            marker = (GATHERED if stage.kind == "grid" else UPLOADED) if done else UnitState.PLANNED
            progress[(stage.name, unit.name)] = UnitProgress(marker, {DONE: 1} if done else {RUNNING: 1})
    snapshot = Snapshot(progress)
    ready = {s.name for s in ready_stages(CHAIN, snapshot)}
    for stage in CHAIN:
        needs_met = all(stage_complete(n, snapshot) for n in CHAIN if n.name in stage.needs)
        expected = not stage_complete(stage, snapshot) and needs_met
        assert (stage.name in ready) is expected, stage.name


# ---- next step of a unit --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "progress", "step"),
    [
        (grid("t"), P(None), NextStep.PLAN),
        (grid("t"), P(None, done=3), NextStep.PLAN),  # jobs submitted by hand, unit never planned by a run
        (grid("t"), P(done=2, running=1), NextStep.NOTHING),
        (grid("t"), P(done=2, failed=1), NextStep.NOTHING),  # the failure is retried or stalls the run
        (grid("t"), P(done=3), NextStep.GATHER),
        (grid("t"), P(GATHERED, done=3), NextStep.NOTHING),
        (grid("t"), P(), NextStep.NOTHING),  # planned with zero jobs
        (local("m"), P(done=1), NextStep.NOTHING),  # complete as it is
        (local("m", upload=True), P(done=1), NextStep.UPLOAD),
        (local("m", upload=True), P(UPLOADED, done=1), NextStep.NOTHING),
        (local("m", upload=True), P(queued=1), NextStep.NOTHING),
    ],
)
def test_next_step(stage, progress, step):
    (unit,) = units_of(stage)
    assert next_step(unit, progress) is step


def test_units_to_plan_are_those_without_a_marker_sweeps_included():
    stage = grid("scan", units=("gamma", "proton"), sweep={"name": "cut", "values": [1, 2]})
    snapshot = snap(scan__gamma_cut1=P(running=1), scan__gamma_cut2=P(None, done=1))
    assert [u.name for u in units_to_plan(stage, snapshot)] == ["gamma-cut2", "proton-cut1", "proton-cut2"]


# ---- stalled --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("progress", "is_stalled"),
    [
        ({}, False),  # zero jobs: nothing to wait for, nothing failed
        ({"train__gamma": P(done=2)}, False),
        ({"train__gamma": P(failed=2)}, True),  # all failed for good
        ({"train__gamma": P(done=1, killed=1)}, True),
        ({"train__gamma": P(failed=1), "train__proton": P(planned=1)}, False),  # still something to submit
        ({"train__gamma": P(failed=1), "train__proton": P(submitting=1)}, False),
        ({"train__gamma": P(failed=1), "train__proton": P(queued=1)}, False),
        ({"train__gamma": P(failed=1), "train__proton": P(running=1)}, False),
        ({"train__gamma": P(done=1), "side__gamma": P(failed=1)}, False),  # not a ready stage's
    ],
)
def test_stalled(progress, is_stalled):
    assert stalled([CHAIN[0]], snap(**progress)) is is_stalled


# ---- retry and throttle -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    name: str
    status: JobStatus
    attempts: int


def test_failures_are_retried_until_the_attempts_run_out():
    jobs = [
        Job("a", FAILED, 1),
        Job("b", FAILED, 3),
        Job("c", FAILED, 4),  # more than the limit (lowered since): failed for good
        Job("d", DONE, 1),
        Job("e", KILLED, 1),  # killed by someone: never retried by itself
        Job("f", RUNNING, 3),
    ]
    assert split_failures(jobs, max_attempts=3) == (["a"], ["b", "c"])
    assert split_failures(jobs, max_attempts=1) == ([], ["a", "b", "c"])
    assert split_failures([], max_attempts=3) == ([], [])


@pytest.mark.parametrize(
    ("active", "max_active", "free"), [(0, 10, 10), (4, 10, 6), (10, 10, 0), (12, 10, 0), (0, 0, 0)]
)
def test_free_slots(active, max_active, free):
    assert free_slots(active, max_active) == free


@pytest.mark.parametrize(
    ("active", "waiting", "max_active", "at_most"),
    [
        (5, 0, 10, 0),  # nothing waiting: wake when every job has ended
        (10, 3, 10, 5),  # a full house: wake when half the slots are free
        (3, 3, 10, 2),  # few active: wake when one ends
        (1, 3, 10, 0),
        (0, 3, 10, 0),
        (4, 3, 1, 0),
    ],
)
def test_wake_up_point(active, waiting, max_active, at_most):
    assert wake_when_active_at_most(active, waiting, max_active) == at_most


@pytest.mark.parametrize(
    ("poll", "quiet", "ceiling", "wait"),
    [
        (0.3, 0, 5.0, 0.3),  # something moved: the poll interval
        (0.3, 1, 5.0, 0.6),  # one quiet cycle: twice as long
        (0.3, 4, 5.0, 4.8),
        (0.3, 5, 5.0, 5.0),  # capped
        (0.3, 10_000, 5.0, 5.0),  # no overflow after days of quiet
        (30.0, 3, 5.0, 30.0),  # a poll interval above the ceiling is kept, never shortened
    ],
)
def test_idle_wait_backs_off_to_a_ceiling(poll, quiet, ceiling, wait):
    assert idle_wait(poll, quiet, ceiling) == pytest.approx(wait)
