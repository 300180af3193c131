"""gridpipe's SQLite databases opened by several processes at the same moment (a `status` while a `run` starts).

SQLite answers "database is locked" at once, without waiting for its busy timeout, when one process
reads or sets the journal mode while another opens, converts or closes the same file. Every database
gridpipe keeps must open cleanly however the processes interleave.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

import pytest

from gridpipe.backends.local_queue import LocalQueue
from gridpipe.storage.local import LocalStorage
from gridpipe.store import JobStore

PROCESSES = 4
ROUNDS = 40


def _open(kind: str, folder: Path) -> None:
    if kind == "store":
        JobStore(folder / "state.db").close()
    elif kind == "queue":
        LocalQueue(folder / "local").close()
    else:
        LocalStorage(folder / "se").close()


def _worker(kind: str, base: str, barrier, errors) -> None:  # type: ignore[no-untyped-def]
    reported = False
    for round_ in range(ROUNDS):
        barrier.wait()
        try:
            for _ in range(3):  # open, close, and open again while the others do the same
                _open(kind, Path(base) / str(round_))
        except Exception:  # the first one reported to the test process whole (a full queue pipe would
            if not reported:  # keep this process from exiting)
                errors.put(traceback.format_exc())
                reported = True


@pytest.mark.parametrize("kind", ["store", "queue", "storage"])
def test_fresh_database_opened_by_several_processes_at_once(tmp_path, kind):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    errors = context.Queue()
    workers = [
        context.Process(target=_worker, args=(kind, str(tmp_path), barrier, errors)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    found = []
    while not errors.empty():
        found.append(errors.get())
    errors.close()
    errors.join_thread()
    assert found == [], found[0]


def test_threads_of_one_process_create_the_same_store_at_once(tmp_path: Path) -> None:
    """The service opens a new analysis's store from its API and from its drive at the same moment: both
    threads build it under their own temporary name (one process, one pid), one links it, both use it."""
    import threading

    for round_ in range(ROUNDS):
        folder = tmp_path / str(round_)
        start = threading.Barrier(PROCESSES)
        errors: list[str] = []

        def create(
            folder: Path = folder, start: threading.Barrier = start, errors: list[str] = errors
        ) -> None:
            start.wait()
            try:
                JobStore(folder / "state.db").close()
            except Exception:
                errors.append(traceback.format_exc())

        threads = [threading.Thread(target=create) for _ in range(PROCESSES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], errors[0]
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("state.db")) == []
