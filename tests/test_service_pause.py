"""Pause and remove answer at once, even while the analysis's driver is in the middle of a long step (here:
its refresh waits behind a monitoring lane held by other work); they take effect at the step's next safe
point: nothing is submitted after the pause, and the run lock is let go once the step has ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine_helpers import make_analysis, wait_executor_gone

from gridpipe.core.fsutil import held_lock
from gridpipe.service.context import Analysis
from gridpipe.service.driven import DriveOptions
from gridpipe.service.statedir import StateDir
from gridpipe.service.supervisor import STEP_ENDS_FIRST, DriveState, Supervisor


def _wait(predicate, timeout: float = 60.0, what: str = "it"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f} s"
        time.sleep(0.02)
    return value


def _lock_free(path: Path) -> bool:
    with held_lock(path / ".gridpipe" / "run.lock", wait=False) as fd:
        return fd is not None


def _submitted(path: Path) -> int:
    with Analysis.open(path) as an:
        return sum(1 for row in an.store.attempt_rows())


@contextmanager
def _held_monitoring_lane(sup: Supervisor) -> Iterator[threading.Event]:
    """Keep the only monitoring worker busy until the event is set: a driver's refresh waits behind it."""
    release = threading.Event()
    lane = sup.pools.lanes["monitoring"]
    holder = threading.Thread(target=lane.call, args=("held by the test", "test", lambda: release.wait(120)))
    holder.start()
    _wait(lambda: lane.view().workers[0].task == "held by the test", what="the lane to be held")
    try:
        yield release
    finally:
        release.set()
        holder.join()


def _in_refresh(sup: Supervisor) -> bool:
    return any(t.task == "refresh" for t in sup.pools.lanes["monitoring"].view().waiting)


@contextmanager
def _service(tmp_path: Path, gamma: int) -> Iterator[tuple[Supervisor, Path]]:
    """A supervisor with one monitoring worker, and an analysis of `gamma` + 1 grid jobs and a local one."""
    path = make_analysis(tmp_path, {"gamma": gamma, "proton": 1}, n_file_per_job=1)
    sup = Supervisor(StateDir(tmp_path / "state"), {"monitoring": 1}, lambda _line: None)
    sup.start()
    try:
        yield sup, path
    finally:
        sup.stop()
        wait_executor_gone(path)


def _add_in_a_long_step(sup: Supervisor, path: Path) -> str:
    """Add the analysis; its driver's first refresh waits in the held lane (a long step). Its id."""
    view = sup.add(path, DriveOptions(poll_interval=0.05))
    _wait(lambda: _in_refresh(sup), what="the driver's refresh to wait in the lane")
    return view.id


def test_pause_and_remove_answer_at_once_during_a_long_step(tmp_path):
    with _service(tmp_path, 3) as (sup, path):
        with _held_monitoring_lane(sup) as release:
            key = _add_in_a_long_step(sup, path)
            started = time.monotonic()
            paused = sup.pause(key)
            assert time.monotonic() - started < 1.0  # it did not wait for the step
            assert (paused.state, paused.paused, paused.message) == (DriveState.PAUSED, True, STEP_ENDS_FIRST)
            assert not _lock_free(path)  # the step is still under way, and holds the run lock
            release.set()
            _wait(lambda: _lock_free(path), what="the run lock's release after the step")
        assert _submitted(path) == 0  # the step ended at its safe point: nothing was submitted
        assert sup.view(key).message == ""  # the pause is complete

        sup.resume(key)  # drives again, and to the end
        _wait(lambda: sup.view(key).state is DriveState.COMPLETE, what="completion")
        assert _submitted(path) == 5  # 3 gamma, 1 proton, the local summary

        with _held_monitoring_lane(sup) as release:
            sup.resume(key)  # a complete analysis is checked again: its refresh waits in the lane
            _wait(lambda: _in_refresh(sup), what="the driver's refresh to wait in the lane")
            started = time.monotonic()
            removed = sup.remove(key)
            assert time.monotonic() - started < 1.0
            assert removed.path == str(path) and sup.views() == []
            assert not _lock_free(path)
            release.set()
            _wait(lambda: _lock_free(path), what="the run lock's release after the step")
        assert _submitted(path) == 5  # exactly once


def test_a_resume_during_the_paused_step_waits_for_it_never_two_drives_at_once(tmp_path):
    with _service(tmp_path, 2) as (sup, path):
        with _held_monitoring_lane(sup) as release:
            key = _add_in_a_long_step(sup, path)
            sup.pause(key)
            resumed = sup.resume(key)  # at once, though the old drive has not ended its step
            assert resumed.paused is False and resumed.state is DriveState.STARTING
            time.sleep(0.3)
            assert sup.view(key).state is DriveState.STARTING  # the new drive waits for the old one
            release.set()
        _wait(lambda: sup.view(key).state is DriveState.COMPLETE, what="completion")
        assert _submitted(path) == 4
