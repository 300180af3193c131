"""The background service's engine: one driver thread per analysis, each running the same Orchestrator as
`gridpipe run` under the same run lock, its slow work in the shared lanes. Drivers are independent: one
whose analysis fails, vanishes or whose backend is down is reported (state and message) and retried
later; the others carry on. The list of analyses is saved on every change and taken up again at start."""

from __future__ import annotations

import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from gridpipe.analysis.locate import find_analysis
from gridpipe.core.exceptions import GridpipeError, RunLockedError, UsageError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.service.context import Analysis
from gridpipe.service.driven import DrivenAnalysis, DriveOptions, load_driven, save_driven
from gridpipe.service.lanes import LanePools
from gridpipe.service.orchestrator import Orchestrator, RunOutcome, locked_error, run_lock_at, run_options
from gridpipe.service.statedir import StateDir

Log = Callable[[str], None]

EVENTS_KEPT = 200
"""Messages kept per analysis for the API and the dashboard (the service log has them all)."""


class DriveState(StrEnum):
    """What the service is doing with an analysis."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETE = "complete"
    STALLED = "stalled"
    """Jobs failed for good or were killed: the service checks again now and then (after a resubmit)."""
    LOCKED = "locked"
    """Another process (a foreground `gridpipe run`) drives it: the service tries again later."""
    ERROR = "error"
    """It failed (bad config, vanished, backend down for too long): the service tries again later."""


class UnknownAnalysisError(UsageError):
    """The service does not drive an analysis with this id or path."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"the service does not drive {key}; see `gridpipe service status`")


class AlreadyDrivenError(UsageError):
    """The service already drives the analysis at `path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"the service already drives {path}; `gridpipe service resume` if it is paused")


@dataclass(frozen=True)
class Retry:
    """How long a driver waits before trying again after each outcome (seconds)."""

    stalled: float = 10.0
    locked: float = 5.0
    error_first: float = 5.0
    error_most: float = 300.0


@dataclass(frozen=True)
class DriveView:
    """An analysis as the service sees it now."""

    id: str
    path: str
    name: str
    state: DriveState
    message: str
    paused: bool
    options: DriveOptions
    since: str
    events: list[tuple[str, str]]
    warning: str | None = None
    """Submission is paused for this reason (e.g. the DIRAC token is near its end)."""


STEP_ENDS_FIRST = "the current step ends first"
"""The message of an analysis paused while its driver finishes the step it was in."""


class Driver:
    """Drives one analysis in its own thread until it is complete, paused or the service stops.

    Pause and remove answer at once: they set the drive's stop event and the driver stops at its next safe
    point (the orchestrator checks between the parts of a cycle; a lane call under way finishes first). A
    resume meanwhile starts a new drive that waits for the old one to end: never two drives at once.
    """

    def __init__(self, entry: DrivenAnalysis, pools: LanePools, log: Log, retry: Retry) -> None:
        self.entry = entry
        self.pools, self.log, self.retry = pools, log, retry
        self.stop_event = threading.Event()
        self.state = DriveState.PAUSED if entry.paused else DriveState.STARTING
        self.message = ""
        self.since = isoformat(utcnow())
        self.events: deque[tuple[str, str]] = deque(maxlen=EVENTS_KEPT)
        self.noted = 0
        """How many events were ever noted (the number of the next one)."""
        self.thread: threading.Thread | None = None
        self.name = Path(entry.path).name
        self.orchestrator: Orchestrator | None = None

    def _set(self, state: DriveState, message: str = "", stop: threading.Event | None = None) -> None:
        """Set the state (from a drive: only while that drive has not been asked to stop)."""
        if stop is not None and stop.is_set():
            return
        if (state, message) != (self.state, self.message):
            self.state, self.message, self.since = state, message, isoformat(utcnow())
            self.note(f"{state.value}" + (f": {message}" if message else ""))

    def note(self, text: str) -> None:
        """Keep `text` among the analysis's recent events and write it to the service log."""
        self.events.append((isoformat(utcnow()), text))
        self.noted += 1
        self.log(f"[{self.entry.path}] {text}")

    def start(self) -> None:
        """Start driving (a new thread; it first waits for a previous drive still ending its step)."""
        previous, self.stop_event = self.thread, threading.Event()
        self._set(DriveState.STARTING)
        self.thread = threading.Thread(
            target=self._run, args=(self.stop_event, previous), name=f"drive-{self.entry.id}", daemon=True
        )
        self.thread.start()

    def request_stop(self, state: DriveState | None = None) -> None:
        """Ask the drive to stop at its next safe point and return at once (jobs keep running)."""
        self.stop_event.set()
        if state is not None:
            busy = self.thread is not None and self.thread.is_alive()
            self._set(state, STEP_ENDS_FIRST if busy else "")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the drive's thread to end; whether it has."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _run(self, stop: threading.Event, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()  # the last drive ends the step it was in first
        try:
            self._loop(stop)
        finally:
            if stop.is_set() and stop is self.stop_event and self.message == STEP_ENDS_FIRST:
                self._set(self.state)  # the step has ended: the pause is complete

    def _loop(self, stop: threading.Event) -> None:
        errors = 0
        while not stop.is_set():
            wait = 0.0
            try:
                path = Path(self.entry.path)
                if not (path / ".gridpipe").is_dir():
                    raise UsageError(f"{path}: the analysis folder is gone; `gridpipe service remove` it")
                with run_lock_at(path, by_service=True):  # held while stalled too: no run slips in
                    while self._drive_once(stop) is RunOutcome.STALLED:
                        errors = 0
                        if stop.wait(self.retry.stalled):
                            return
                return  # complete, or stopped
            except RunLockedError as exc:
                self._set(DriveState.LOCKED, exc.detail, stop)
                wait = self.retry.locked
            except GridpipeError as exc:
                self._set(DriveState.ERROR, exc.detail, stop)
                wait = min(self.retry.error_first * 2**errors, self.retry.error_most)
                errors += 1
            except OSError as exc:
                where = f"{exc.filename}: " if exc.filename else ""
                self._set(DriveState.ERROR, f"{where}{exc.strerror or exc}", stop)
                wait = min(self.retry.error_first * 2**errors, self.retry.error_most)
                errors += 1
            except Exception as exc:  # a bug must not stop the other analyses: log it, report it, retry
                self.log(traceback.format_exc())
                self._set(DriveState.ERROR, f"internal error: {type(exc).__name__}: {exc}", stop)
                wait = min(self.retry.error_first * 2**errors, self.retry.error_most)
                errors += 1
            stop.wait(wait)

    def _drive_once(self, stop: threading.Event) -> RunOutcome:
        with Analysis.open(Path(self.entry.path)) as an:
            opts = self.entry.options
            options = run_options(an, opts.max_active, opts.max_attempts, opts.poll_interval)
            orchestrator = Orchestrator(
                an, options, self.note, lanes=self.pools.for_owner(self.name), by_service=True
            )
            self.orchestrator = orchestrator
            self._set(DriveState.RUNNING, stop=stop)
            try:
                report = orchestrator.drive(stop, preflight=False)
            finally:
                self.orchestrator = None
        if report.outcome is RunOutcome.COMPLETE:
            self._set(DriveState.COMPLETE, report.message, stop)
        elif report.outcome is RunOutcome.STALLED:
            self._set(DriveState.STALLED, report.message, stop)
        return report.outcome

    def events_since(self, number: int) -> tuple[int, list[tuple[str, str]]]:
        """Events numbered `number` and later that are still kept, and the number of the next one."""
        kept, noted = list(self.events), self.noted
        first = noted - len(kept)
        return noted, kept[max(0, number - first) :]

    def view(self) -> DriveView:
        """Its state now."""
        return DriveView(
            self.entry.id,
            self.entry.path,
            self.name,
            self.state,
            self.message,
            self.entry.paused,
            self.entry.options,
            self.since,
            list(self.events),
            self.orchestrator.submission_paused if self.orchestrator else None,
        )


class Supervisor:
    """Every analysis the service drives; thread-safe."""

    def __init__(
        self, state: StateDir, lane_sizes: dict[str, int], log: Log, retry: Retry | None = None
    ) -> None:
        self.state, self.log = state, log
        self.retry = retry or Retry()
        self.pools = LanePools(lane_sizes)
        self._drivers: dict[str, Driver] = {}
        self._removed: list[Driver] = []
        """Removed drivers that may still be ending their step (the shutdown waits for them)."""
        self._guard = threading.RLock()

    def start(self) -> None:
        """Take up the saved analyses (those not paused start driving)."""
        with self._guard:
            for entry in load_driven(self.state.analyses):
                driver = Driver(entry, self.pools, self.log, self.retry)
                self._drivers[entry.id] = driver
                if not entry.paused:
                    driver.start()
            self.log(f"took up {len(self._drivers)} analysis(es)")

    def _save(self) -> None:
        save_driven(self.state.analyses, [d.entry for d in self._drivers.values()])

    def _driver(self, key: str) -> Driver:
        driver = self._drivers.get(key)
        if driver is None:
            raise UnknownAnalysisError(key)
        return driver

    def add(self, path: Path, options: DriveOptions, *, paused: bool = False) -> DriveView:
        """Drive the analysis at `path` (its configs checked first; refused if a run drives it now)."""
        root = find_analysis(path)
        Analysis.open(root).close()  # a bad config is refused now, naming the file
        lock = root / ".gridpipe" / "run.lock"
        with held_lock(lock, wait=False) as fd:
            if fd is None:
                raise locked_error(root, lock.read_text(errors="replace"))
        entry = DrivenAnalysis(path=str(root), options=options, paused=paused)
        with self._guard:
            if entry.id in self._drivers:
                raise AlreadyDrivenError(str(root))
            driver = Driver(entry, self.pools, self.log, self.retry)
            self._drivers[entry.id] = driver
            self._save()
            driver.note("added" + (" (paused)" if paused else ""))
            if not paused:
                driver.start()
            return driver.view()

    def pause(self, key: str) -> DriveView:
        """Stop driving until resumed, across restarts; answers at once (the step under way ends first, and
        nothing new is submitted after it; jobs keep running)."""
        with self._guard:
            driver = self._driver(key)
            driver.entry = driver.entry.model_copy(update={"paused": True})
            self._save()
            driver.request_stop(DriveState.PAUSED)
            return driver.view()

    def resume(self, key: str) -> DriveView:
        """Drive a paused analysis again (or retry one in error now); the new drive begins once the old one
        has ended its step."""
        with self._guard:
            driver = self._driver(key)
            driver.entry = driver.entry.model_copy(update={"paused": False})
            self._save()
            driver.request_stop()
            driver.start()
            return driver.view()

    def remove(self, key: str) -> DriveView:
        """Stop driving and forget the analysis, at once (the step under way ends first; its jobs keep
        running; `gridpipe run` may take over once the run lock is free)."""
        with self._guard:
            driver = self._driver(key)
            del self._drivers[key]
            self._save()
            driver.request_stop()
            self._removed = [d for d in self._removed if not d.join(0)] + [driver]
        driver.note("removed")
        return driver.view()

    def views(self) -> list[DriveView]:
        """Every analysis, in the order added."""
        with self._guard:
            drivers = list(self._drivers.values())
        return [d.view() for d in drivers]

    def events_since(self, key: str, number: int) -> tuple[int, list[tuple[str, str]]]:
        """An analysis's events from `number` on (see Driver.events_since)."""
        with self._guard:
            driver = self._driver(key)
        return driver.events_since(number)

    def view(self, key: str) -> DriveView:
        """One analysis."""
        with self._guard:
            return self._driver(key).view()

    def stop(self) -> None:
        """Stop every driver (each ends its current step; jobs keep running), then the lanes."""
        with self._guard:
            drivers = [*self._drivers.values(), *self._removed]
        for driver in drivers:
            driver.request_stop()
        for driver in drivers:
            driver.join()
        self.pools.close()
