"""The service's work lanes: bounded (a full lane makes the next caller wait) and visible (each worker's
task and how long it has run, the tasks waiting); a failing task's error goes back to its caller only."""

from __future__ import annotations

import threading
import time

import pytest

from gridpipe.service.lanes import LanePools


def test_a_lane_runs_shows_and_bounds_its_work():
    pools = LanePools({"submission": 1}, capacity=2)
    release = threading.Event()
    results: list[str] = []

    def blocked(label: str) -> str:
        release.wait(30)
        return label

    def call(label: str, owner: str) -> None:
        results.append(pools.for_owner(owner).call("submission", label, lambda: blocked(label)))

    threads = [threading.Thread(target=call, args=(f"submit {i}", f"ana{i}")) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
            time.sleep(0.1)
        (view,) = [v for v in pools.views() if v.name == "submission"]
        (worker,) = view.workers
        assert worker.worker == "submission-1" and worker.task == "submit 0" and worker.owner == "ana0"
        assert worker.running_for is not None and worker.running_for > 0.2
        assert [(w.task, w.owner) for w in view.waiting] == [("submit 1", "ana1"), ("submit 2", "ana2")]
        assert threads[3].is_alive() and "submit 3" not in [w.task for w in view.waiting]  # bounded: it waits
        idle = {v.name: v for v in pools.views()}
        assert all(w.task is None for w in idle["monitoring"].workers)
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert sorted(results) == [f"submit {i}" for i in range(4)]
    assert [w.task for w in pools.views()[0].workers] == [None]
    pools.close()


def test_an_error_goes_back_to_its_caller_and_the_lane_carries_on():
    pools = LanePools({"transfers": 1})
    lanes = pools.for_owner("ana")

    def broken() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        lanes.call("transfers", "gather produce/gamma", broken)
    assert lanes.call("transfers", "gather produce/proton", lambda: 42) == 42
    pools.close()
