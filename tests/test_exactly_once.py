"""kill -9 of the submitting process at many points of a 200-job submission: every job runs exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from engine_helpers import gridpipe, make_analysis, wait_idle

N_JOBS = 200


def _queued(path) -> int:
    db = path / ".gridpipe" / "local" / "queue.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_during_submission_never_loses_or_duplicates(tmp_path):
    path = make_analysis(tmp_path, {"gamma": N_JOBS}, n_file_per_job=1)
    grid = path / "configs" / "grid.yaml"
    grid.write_text(grid.read_text().replace("submit_batch: 0", "submit_batch: 2"))
    assert "submit_batch: 2" in grid.read_text()
    kills = 0
    for threshold in range(1, N_JOBS, 15):  # 14 kill points spread over the submission
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridpipe", "submit", "--output_type", "TRAINING", "-a", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and _queued(path) < threshold and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 10, f"only {kills} submissions were still running when killed"
    final = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path))
    assert final.returncode == 0, final.stderr
    queue = wait_idle(path, timeout=120)
    ledger = [name for _, name in queue.ledger()]
    queue.close()
    assert len(ledger) == N_JOBS
    assert len(set(ledger)) == N_JOBS
    status = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)
    assert status["stages"]["produce"] == {"gamma": {"done": N_JOBS}}
    assert all(job["attempts"] == 1 for job in status["jobs"])
    assert len({job["backend_id"] for job in status["jobs"]}) == N_JOBS
