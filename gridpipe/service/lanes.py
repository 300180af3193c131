"""Bounded, visible work queues of the service: one pool of worker threads per lane (submission,
monitoring, transfers). A driver hands its slow work to a lane and waits for the result; a full lane makes
the next driver wait (back-pressure), and `snapshot()` shows what every worker does and what waits."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

LANES = ("submission", "monitoring", "transfers")
"""The lanes, in the order they are shown."""


@dataclass
class Task:
    """One piece of work waiting in a lane or running in one of its workers."""

    label: str
    owner: str
    work: Callable[[], object]
    future: Future[object] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None


@dataclass(frozen=True)
class WorkerView:
    """What one worker is doing."""

    worker: str
    task: str | None
    owner: str | None
    running_for: float | None


@dataclass(frozen=True)
class WaitingView:
    """A task waiting for a worker."""

    task: str
    owner: str
    waiting_for: float


@dataclass(frozen=True)
class LaneView:
    """One lane: its size, its workers and what waits."""

    name: str
    size: int
    capacity: int
    workers: list[WorkerView]
    waiting: list[WaitingView]


_STOP = object()


class Lane:
    """`size` worker threads taking tasks from a queue of at most `capacity` waiting tasks."""

    def __init__(self, name: str, size: int, capacity: int) -> None:
        self.name, self.size, self.capacity = name, size, capacity
        self._queue: queue.Queue[Task | object] = queue.Queue(maxsize=capacity)
        self._current: dict[str, Task | None] = {}
        self._guard = threading.Lock()
        self._threads = [
            threading.Thread(
                target=self._work, args=(f"{name}-{i + 1}",), name=f"{name}-{i + 1}", daemon=True
            )
            for i in range(size)
        ]
        for thread in self._threads:
            self._current[thread.name] = None
            thread.start()

    def call(self, label: str, owner: str, work: Callable[[], T]) -> T:
        """Run `work` in a worker of this lane (waiting for room if the lane is full); its result."""
        task = Task(label, owner, work)
        self._queue.put(task)
        return task.future.result()  # type: ignore[return-value]

    def _work(self, worker: str) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Task)
            item.started_at = time.monotonic()
            with self._guard:
                self._current[worker] = item
            try:
                if item.future.set_running_or_notify_cancel():
                    try:
                        item.future.set_result(item.work())
                    except BaseException as exc:  # handed to the waiting driver, which reports it
                        item.future.set_exception(exc)
            finally:
                with self._guard:
                    self._current[worker] = None

    def view(self) -> LaneView:
        """Workers and waiting tasks now."""
        now = time.monotonic()
        with self._guard:
            current = dict(self._current)
        workers = [
            WorkerView(
                name,
                t.label if t else None,
                t.owner if t else None,
                round(now - t.started_at, 3) if t and t.started_at else None,
            )
            for name, t in current.items()
        ]
        with self._queue.mutex:
            waiting = [t for t in self._queue.queue if isinstance(t, Task)]
        return LaneView(
            self.name,
            self.size,
            self.capacity,
            workers,
            [WaitingView(t.label, t.owner, round(now - t.queued_at, 3)) for t in waiting],
        )

    def close(self) -> None:
        """Let the workers finish their task and end."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()


class LanePools:
    """The service's lanes; `for_owner(name)` gives the `Lanes` one analysis's orchestrator uses."""

    def __init__(self, sizes: dict[str, int], capacity: int = 64) -> None:
        self.lanes = {name: Lane(name, max(1, sizes.get(name, 1)), capacity) for name in LANES}

    def for_owner(self, owner: str) -> OwnerLanes:
        """Lanes that label the tasks with `owner` (an analysis)."""
        return OwnerLanes(self, owner)

    def views(self) -> list[LaneView]:
        """Every lane, in order."""
        return [lane.view() for lane in self.lanes.values()]

    def close(self) -> None:
        """Stop every lane (their running tasks finish first)."""
        for lane in self.lanes.values():
            lane.close()


@dataclass(frozen=True)
class OwnerLanes:
    """The orchestrator's view of the pools (gridpipe.service.orchestrator.Lanes)."""

    pools: LanePools
    owner: str

    def call(self, lane: str, label: str, work: Callable[[], T]) -> T:
        """Run `work` in `lane`."""
        return self.pools.lanes[lane].call(label, self.owner, work)
