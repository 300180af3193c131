"""The orchestrator: keeps a whole analysis moving (Ganga Tasks style) until it is complete or stuck.

Each cycle: refresh active jobs (one poll per backend), retry failures up to `max_attempts`, plan the
units of stages whose needs are complete, gather finished grid units (download + merge), upload the
models of finished local stages, and submit planned jobs while fewer than `max_active` are active.
All state lives in the job store, so a stopped run resumes where it stopped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, TypeVar

from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import BackendError, RunLockedError, UsageError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.states import ACTIVE_STATES, JobStatus, UnitState
from gridpipe.service.context import Analysis
from gridpipe.service.gather import GatherOptions, gather_unit
from gridpipe.service.models import upload_stage_outputs
from gridpipe.service.planning import input_list_path, plan_units, record_plan
from gridpipe.service.refresh import refresh
from gridpipe.service.rerun import rerun_stale_unit
from gridpipe.service.submission import SubmitReport, submit
from gridpipe.workflow.planner import Unit, units_of
from gridpipe.workflow.policy import free_slots, idle_wait, split_failures, wake_when_active_at_most
from gridpipe.workflow.progress import (
    NextStep,
    Snapshot,
    next_step,
    ready_stages,
    stalled,
    units_to_plan,
)

Notify = Callable[[str], None]
T = TypeVar("T")


class Lanes(Protocol):
    """Where the orchestrator's slow work runs: `call(lane, label, work)` runs `work` (in a worker of the lane
    `submission`, `monitoring` or `transfers`) and returns its result. The service gives bounded worker pools;
    `gridpipe run` calls directly."""

    def call(self, lane: str, label: str, work: Callable[[], T]) -> T:
        """Run `work` in `lane`; its result (or its exception)."""
        ...


class Direct:
    """Lanes that run the work in the calling thread (`gridpipe run`)."""

    def call(self, lane: str, label: str, work: Callable[[], T]) -> T:
        """Run `work` now."""
        return work()


IDLE_CEILING_S = 5.0
"""The longest the service waits between cycles while nothing changes (its wait doubles from the poll
interval with every quiet cycle): 1,000 active jobs cost a poll every few seconds, not several a second."""

FIRST_BATCH = 20
"""Jobs submitted alone first when none is active, so that the backend starts running while the rest are
submitted (each part is exactly-once on its own)."""

SERVICE_MARK = "service"
"""Written after the process id in `.gridpipe/run.lock` when the background service drives the analysis."""


@dataclass(frozen=True)
class RunOptions:
    """How hard to drive the analysis."""

    max_active: int
    max_attempts: int
    poll_interval: float = 0.5
    gather_jobs: int = 4
    outage_tolerance: float = 3600.0
    """Seconds a backend may stay unreachable before the run gives up (it waits and retries until then)."""


class RunOutcome(StrEnum):
    """How a run ended."""

    COMPLETE = "complete"
    """Every stage is complete."""
    STALLED = "stalled"
    """Nothing can move without a person: jobs failed for good or were killed, none is active or planned."""
    STOPPED = "stopped"
    """Asked to stop; running again resumes."""


_MESSAGES = {
    RunOutcome.COMPLETE: "the analysis is complete",
    RunOutcome.STOPPED: "stopped before the end; running again resumes",
}


@dataclass
class RunReport:
    """How a run ended; `message` says it in the engine's words (the CLI words it its own way)."""

    outcome: RunOutcome
    failed_for_good: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """The analysis is complete."""
        return self.outcome is RunOutcome.COMPLETE

    @property
    def message(self) -> str:
        """One line on how the run ended."""
        if self.outcome is RunOutcome.STALLED:
            return (
                f"stopped: {len(self.failed_for_good)} job(s) failed for good, {len(self.killed)} killed; "
                "fix the cause, then resubmit them and run again"
            )
        return _MESSAGES[self.outcome]


class Orchestrator:
    """Drives one analysis; `step()` is one cycle, `run()` loops until complete, stuck or stopped.

    What to do is decided by `gridpipe.workflow.progress` and `gridpipe.workflow.policy` from a snapshot
    of the job store; this class only acts on the decisions (store, backends, gather, upload).
    """

    def __init__(
        self,
        an: Analysis,
        options: RunOptions,
        notify: Notify = lambda _msg: None,
        *,
        lanes: Lanes | None = None,
        by_service: bool = False,
    ) -> None:
        self.an = an
        self.options = options
        self.notify = notify
        self.lanes: Lanes = lanes or Direct()
        self.by_service = by_service
        self.submission_paused: str | None = None
        """Why submission is paused (the backend's words: e.g. the DIRAC token is near its end), else None."""
        self._given_up: set[str] = set()
        self.moved = False
        """The last cycle changed something (a job's state, a submission, a plan, a gather, an upload)."""
        self.stop = threading.Event()
        """Set by whoever wants the drive to end: a cycle checks it between its parts (its safe points)."""

    def snapshot(self) -> Snapshot:
        """Jobs per status and progress marker of every unit, as the store has them now."""
        return Snapshot.of(self.an.store.counts(), self.an.store.unit_states())

    def ready_stages(self, snapshot: Snapshot | None = None) -> list[Stage]:
        """Incomplete stages whose needs are all complete, in workflow order."""
        return ready_stages(self.an.workflow.stages, snapshot or self.snapshot())

    # ---- one cycle --------------------------------------------------------------------------------
    def _retry_failures(self) -> None:
        failed = self.an.store.jobs(statuses=[JobStatus.FAILED])
        retry, final = split_failures(failed, self.options.max_attempts)
        if retry:
            self.moved = True
            self.an.store.set_status(retry, JobStatus.PLANNED)
            self.notify(f"retrying {len(retry)} failed job(s)")
        for name in final:
            if name not in self._given_up:
                self._given_up.add(name)
                self.an.store.log_event(
                    "gave-up", f"failed after {self.options.max_attempts} attempt(s)", name
                )
                self.notify(f"{name} failed for good after {self.options.max_attempts} attempt(s)")

    def _plan_units(self, stage: Stage, fresh: list[Unit]) -> None:
        """Plan units of a ready stage not planned yet, in one planning round."""
        store = self.an.store
        added = record_plan(self.an, plan_units(self.an, stage, [u.name for u in fresh]))
        counts = store.unit_counts(stage.name)
        for unit in fresh:
            if stage.kind == "grid" and not counts.get(unit.name):
                raise_empty(self.an, stage, unit)
        details: dict[str, str | None] = {u.name: f"{counts.get(u.name, 0)} job(s)" for u in fresh}
        store.set_stage_states(stage.name, UnitState.PLANNED, details)
        self.notify(f"{stage.name}: planned {len(added)} job(s) in {len(fresh)} unit(s)")

    def _gather(self, unit: Unit, n_jobs: int) -> None:
        stage = unit.stage
        result = self.lanes.call(
            "transfers",
            f"gather {stage.name}/{unit.name}",
            lambda: gather_unit(self.an, unit, GatherOptions(jobs=self.options.gather_jobs)),
        )
        where = (
            f"{result.merged} ({sum(result.rows.values())} rows)" if result.merged else str(result.local_dir)
        )
        self.an.store.set_stage_state(stage.name, unit.name, UnitState.GATHERED, where)
        verb = "downloaded and merged" if result.merged else "downloaded"
        self.notify(f"{stage.name}/{unit.name}: {verb} {n_jobs} output(s) into {where}")

    def _upload(self, unit: Unit) -> None:
        stage = unit.stage
        uploaded = self.lanes.call(
            "transfers", f"upload {stage.name}", lambda: upload_stage_outputs(self.an, stage)
        )
        self.an.store.set_stage_state(stage.name, unit.name, UnitState.UPLOADED, f"{len(uploaded)} file(s)")
        self.notify(f"{stage.name}: uploaded {len(uploaded)} model file(s)")

    def _advance(self, stages: list[Stage], snapshot: Snapshot) -> None:
        """Stage by stage: plan the new units, then gather or upload the units whose jobs are all done."""
        for stage in stages:
            fresh = units_to_plan(stage, snapshot)
            if fresh:
                self.moved = True
                self._plan_units(stage, fresh)
                snapshot = self.snapshot()
            for unit in units_of(stage):
                progress = snapshot.unit(unit)
                step = next_step(unit, progress)
                self.moved = self.moved or step in (NextStep.GATHER, NextStep.UPLOAD, NextStep.RERUN)
                if step is NextStep.GATHER:
                    self._gather(unit, progress.count([JobStatus.DONE]))
                elif step is NextStep.UPLOAD:
                    self._upload(unit)
                elif step is NextStep.RERUN:
                    again = rerun_stale_unit(self.an, unit)
                    self.notify(f"{stage.name}/{unit.name}: stale, running {len(again)} job(s) again")

    def _submit(self, stages: list[Stage]) -> int:
        """Submit planned jobs of the ready stages into the free slots; how many were submitted."""
        active = self.an.store.count(statuses=ACTIVE_STATES)
        slots = free_slots(active, self.options.max_active)
        if not slots or self._submission_blocked():
            return 0
        names: list[str] = []
        for stage in stages:  # only the jobs that fit: 100,000 planned jobs are not read every cycle
            if len(names) < slots:
                planned = self.an.store.jobs(
                    stage=stage.name, statuses=[JobStatus.PLANNED], limit=slots - len(names)
                )
                names += [j.name for j in planned]
        if names:
            self.moved = True
            # with none active, a few go first: the backend starts on them while the rest are submitted
            first = FIRST_BATCH if not active else len(names)
            batches = [batch for batch in (names[:first], names[first:]) if batch]
            submitted = sum(len(self._submit_batch(batch).submitted) for batch in batches)
            self.notify(f"submitted {submitted} job(s)")
        return len(names)

    def _submit_batch(self, names: list[str]) -> SubmitReport:
        return self.lanes.call("submission", f"submit {len(names)} job(s)", lambda: submit(self.an, names))

    def _submission_blocked(self) -> bool:
        """Ask the grid backend whether submitting can work now; say when that changes."""
        blocker = self.an.backend.submission_blocker()
        if blocker != self.submission_paused:
            if blocker:
                self.notify(f"submission paused: {blocker}")
            else:
                self.notify("submission resumed")
            self.submission_paused = blocker
        return blocker is not None

    def _report_changes(self, changed: list[tuple[str, JobStatus]]) -> None:
        """One line per cycle: how many jobs ended, and which ones failed (the first few by name)."""
        ended = [(n, s) for n, s in changed if s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.KILLED)]
        if not ended:
            return
        counts = {
            s: sum(1 for _, x in ended if x == s)
            for s in (JobStatus.DONE, JobStatus.FAILED, JobStatus.KILLED)
        }
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        bad = [n for n, s in ended if s != JobStatus.DONE]
        if bad:
            text += ": " + ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        self.notify(f"jobs ended: {text}")

    def step(self) -> RunReport | None:
        """One cycle; a report when the analysis is complete or cannot progress, else None."""
        changed = self.lanes.call("monitoring", "refresh", lambda: refresh(self.an))
        self.moved = bool(changed)
        self._report_changes(changed)
        if self.stop.is_set():  # a safe point: what the refresh saw is recorded, nothing else started
            return None
        self._retry_failures()
        snapshot = self.snapshot()
        stages = self.ready_stages(snapshot)
        if not stages:
            return RunReport(RunOutcome.COMPLETE)
        self._advance(stages, snapshot)
        snapshot = self.snapshot()
        stages = self.ready_stages(snapshot)
        if self.stop.is_set():  # a safe point: nothing submitted after a pause
            return None
        if self._submit(stages):
            snapshot = self.snapshot()
        if not stages:
            return RunReport(RunOutcome.COMPLETE)
        return self._stalled(stages) if stalled(stages, snapshot) else None

    def _stalled(self, stages: list[Stage]) -> RunReport:
        stopped = [
            j
            for s in stages
            for j in self.an.store.jobs(stage=s.name, statuses=[JobStatus.FAILED, JobStatus.KILLED])
        ]
        failed = [j.name for j in stopped if j.status == JobStatus.FAILED]
        killed = [j.name for j in stopped if j.status == JobStatus.KILLED]
        return RunReport(RunOutcome.STALLED, failed, killed)

    def _wait(self, stop: threading.Event, quiet: int) -> None:
        """Until the next cycle is worth it: enough slots freed for waiting jobs, all jobs ended, or the
        poll interval passed (a backend that cannot tell cheaply just waits out the interval). The service
        has no fine-grained watch and waits longer after each of `quiet` cycles that changed nothing."""
        if self.by_service:
            stop.wait(idle_wait(self.options.poll_interval, quiet, IDLE_CEILING_S))
            return
        active = self.an.store.active_ids()
        if len(active) != 1:
            stop.wait(self.options.poll_interval)
            return
        ((backend, ids),) = active.items()
        waiting = self.an.store.count(statuses=[JobStatus.PLANNED])
        at_most = wake_when_active_at_most(len(ids), waiting, self.options.max_active)
        self.an.backend_named(backend).wait(at_most, self.options.poll_interval, stop)

    def run(self, stop: threading.Event | None = None) -> RunReport:
        """Loop until complete, stuck, or `stop` is set (then resumable); one run per analysis at a time."""
        with run_lock(self.an, by_service=self.by_service):
            return self.drive(stop or threading.Event())

    def drive(self, stop: threading.Event, *, preflight: bool = True) -> RunReport:
        """`run` for a caller that holds the run lock already (the service holds it while it drives; it
        skips the preflight: a token near its end pauses submission instead of stopping the drive)."""
        self.stop = stop
        if preflight:
            self.an.backend.preflight()  # backend preflight (e.g. DIRAC token) before the first submission
        self.an.backend.ensure_running()  # the local executor starts up while the first stage is planned
        down_since: float | None = None
        failures = quiet = 0
        while not stop.is_set():
            try:
                report = self.step()  # its refresh reconciles submissions a crash left half-done
            except BackendError as exc:
                # A backend outage (server restart, network): every decision is in the store, so wait and
                # carry on where the last cycle stopped; reconciliation settles half-done submissions.
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > self.options.outage_tolerance:
                    raise
                delay = min(2.0**failures, 60.0)
                failures += 1
                self.notify(f"backend unavailable: {exc.detail}; retrying in {delay:.0f} s")
                stop.wait(delay)
                continue
            down_since, failures = None, 0
            if report is not None:
                return report
            quiet = 0 if self.moved else quiet + 1
            self._wait(stop, quiet)
        return RunReport(RunOutcome.STOPPED)


@contextmanager
def run_lock(an: Analysis, *, by_service: bool = False) -> Iterator[None]:
    """`run_lock_at` the analysis's folder."""
    with run_lock_at(an.path, by_service=by_service):
        yield


@contextmanager
def run_lock_at(analysis: Path, *, by_service: bool = False) -> Iterator[None]:
    """The right to drive the analysis (`.gridpipe/run.lock`, holding the driver's process id, and
    `service` when the background service drives it); a second run is refused while the first lives. The
    kernel releases the lock when its holder dies, even by kill -9.
    """
    path = analysis / ".gridpipe" / "run.lock"
    with held_lock(path, wait=False) as fd:
        if fd is None:
            raise locked_error(analysis, path.read_text(errors="replace"))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}{' ' + SERVICE_MARK if by_service else ''}\n".encode(), 0)
        except OSError as exc:  # e.g. a full disk: name the file
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        yield


def locked_error(analysis: Path, text: str) -> RunLockedError:
    """The error for an analysis whose run lock holds `text` (a process id, maybe marked `service`)."""
    words = text.split()
    return RunLockedError(analysis, words[0] if words else "unknown", by_service=SERVICE_MARK in words[1:])


def raise_empty(an: Analysis, stage: Stage, unit: Unit) -> None:
    """A grid unit with no input files cannot progress: say which list to fill."""
    key, rel = input_list_path(an, stage, unit)
    raise UsageError(
        f"{an.path / rel}: input list '{key}' of stage '{stage.name}' is empty; "
        "add one LFN per line, then run again"
    )


def run_options(
    an: Analysis,
    max_active: int | None = None,
    max_attempts: int | None = None,
    poll_interval: float | None = None,
) -> RunOptions:
    """Options given by the user, else grid.yaml's `jobs` section, else what the backend suggests."""
    return RunOptions(
        max_active=max_active or an.grid.jobs.max_active or an.backend.capacity,
        max_attempts=max_attempts or an.grid.jobs.max_attempts,
        poll_interval=poll_interval if poll_interval is not None else an.backend.poll_interval,
    )
