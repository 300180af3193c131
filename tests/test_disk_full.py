"""A full disk: every command stops with one line naming the cause, nothing loops, and after space is freed
`gridpipe run` finishes the work with the store consistent (fault injection on a small real tmpfs)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis, reap_runs, slow_workflow, start_run

from gridpipe.backends.local_queue import LocalQueue


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted for the test (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        reap_runs()
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free the space)."""
    filler = folder / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    return filler


def _analysis(disk: Path) -> Path:
    return make_analysis(
        disk, {"gamma": 4, "proton": 2}, workflow=slow_workflow(disk, 0.3), n_file_per_job=1, max_workers=1
    )


def _finish_after_freeing(path: Path, filler: Path) -> None:
    filler.unlink()
    again = gridpipe("run", "--poll-interval", "0.05", "--max-attempts", "5", "-a", str(path), timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    jobs = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    assert jobs and {j["status"] for j in jobs} == {"done"}


def _assert_one_clear_line(proc: subprocess.CompletedProcess[str] | tuple[int, str]) -> None:
    code, err = (proc.returncode, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc
    assert code == 1, err
    assert "full" in err, err
    assert "internal error" not in err and "Traceback" not in err, err


def test_a_run_on_a_full_disk_stops_with_one_line_and_resumes_after(small_disk):
    path = _analysis(small_disk)
    filler = _fill(small_disk)
    started = time.monotonic()
    proc = gridpipe("run", "--poll-interval", "0.05", "-a", str(path), timeout=120)
    assert time.monotonic() - started < 90
    _assert_one_clear_line(proc)
    status = gridpipe("status", "--no-refresh", "--json", "-a", str(path))
    assert status.returncode == 0, status.stderr  # reading works on a full disk
    _finish_after_freeing(path, filler)


def test_a_disk_that_fills_during_a_run_stops_it_cleanly(small_disk):
    path = _analysis(small_disk)
    run = start_run(path)
    queue_dir = path / ".gridpipe" / "local"
    deadline = time.monotonic() + 60
    while not (queue_dir / "queue.db").exists() or not _started(queue_dir):
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.05)
    filler = _fill(small_disk)
    try:
        _, err = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail("gridpipe run hung on a full disk")
    _assert_one_clear_line((run.returncode, err))
    _finish_after_freeing(path, filler)


def _started(queue_dir: Path) -> bool:
    queue = LocalQueue(queue_dir)
    try:
        return bool(queue.ledger())
    finally:
        queue.close()
