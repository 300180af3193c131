"""Exactly once on HTCondor: kill -9 of `gridpipe submit` at many points of a 200-job submission (while
batch files are written, around the schedd transactions and between them), then submit again: every job ran
exactly once (the schedd's queue and history and the worker's exit records say so) and `status` is exact;
and the schedd stopped during `gridpipe run` and started again: the run carries on, nothing lost or
doubled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from engine_helpers import run_through_outage
from test_backend_htcondor import condor_analysis, gp, status_of

from gridpipe.backends.batch_folders import analysis_key

N_JOBS = 200


def _condor_jobs(path: Path) -> list[tuple[str, str, int]]:
    """(id, name, JobStatus) of every job of the analysis at `path` in the schedd's queue and history."""
    import htcondor2

    constraint = f'GridpipeAnalysis == "{analysis_key(path)}"'
    projection = ["ClusterId", "ProcId", "GridpipeJob", "JobStatus"]
    for attempt in range(3):  # after a schedd restart, this process's cached session is refused once
        try:
            schedd = htcondor2.Schedd()
            ads = list(schedd.query(constraint, projection)) + list(schedd.history(constraint, projection))
            break
        except htcondor2.HTCondorException:
            if attempt == 2:
                raise
            time.sleep(1)
    found = {f"{ad['ClusterId']}.{ad['ProcId']}": (ad["GridpipeJob"], ad["JobStatus"]) for ad in ads}
    return [(cid, name, state) for cid, (name, state) in found.items()]


def _wait_done(pool, path: Path, n: int, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(pool, path)
        if status["stages"]["produce"] == {"gamma": {"done": n}}:
            return status
        assert time.monotonic() < deadline, status["stages"]
        time.sleep(2)


def _batches(condor: Path) -> int:
    """Batch files made so far (one per schedd transaction)."""
    return sum(1 for _ in (condor / "batches").glob("*.jobs")) if (condor / "batches").is_dir() else 0


def _submit_batch(path: Path, size: int) -> None:
    """Set backend.submit_batch, replacing grid.yaml whole (the jobs running meanwhile read it)."""
    grid = path / "configs" / "grid.yaml"
    text, n = re.subn(r"submit_batch: \d+", f"submit_batch: {size}", grid.read_text(), count=1)
    assert n == 1
    tmp = grid.with_name("grid.yaml.tmp")
    tmp.write_text(text)
    owner = grid.stat()
    os.chown(tmp, owner.st_uid, owner.st_gid)
    os.replace(tmp, grid)


@pytest.mark.slow
def test_kill_9_during_an_htcondor_submission_never_loses_or_duplicates(htcondor_pool):
    pool = htcondor_pool
    path = condor_analysis(pool, {"gamma": N_JOBS}, n_file_per_job=1)
    condor = path / ".gridpipe" / "htcondor"
    jobs_dir = condor / "jobs"
    argv = [sys.executable, "-m", "gridpipe", "submit", "--output_type", "TRAINING", "-a", str(path)]
    # first in transactions of 5 jobs: kill as the k-th batch file of the run appears and some time after
    # (while it is written, around its transaction, while ids are recorded and confirmed, between two);
    # then all that is left in one transaction, killed around it
    small = [(1, d) for d in (0.0, 0.001, 0.002, 0.004, 0.006, 0.01)] + [(2, d) for d in (0.0, 0.003, 0.008)]
    points = [(5, k, d) for k, d in [*small, (3, 0.0)]] + [(0, 1, d) for d in (0.0, 0.005, 0.02, 0.05)]
    kills = 0
    for size, k, delay in points:
        _submit_batch(path, size)
        base = _batches(condor)
        proc = pool.user_popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if _batches(condor) - base >= k:
                time.sleep(delay)
                break
            time.sleep(0.0005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if proc.returncode == 0:
            break  # the whole submission went through before the kill
    assert kills >= 10, f"only {kills} submissions were still running when killed"
    final = gp(pool, "submit", "--output_type", "TRAINING", "-a", str(path))
    assert final.returncode == 0, final.stderr
    status = _wait_done(pool, path, N_JOBS)
    condor_jobs = _condor_jobs(path)
    per_name = Counter(name for _, name, _ in condor_jobs)
    assert len(per_name) == N_JOBS and set(per_name.values()) == {1}, per_name.most_common(3)
    assert {state for *_, state in condor_jobs} == {4}  # completed
    records = Counter(
        p.name.removesuffix(".exit.json").rsplit(".", 1)[0] for p in jobs_dir.glob("*.exit.json")
    )
    assert len(records) == N_JOBS and set(records.values()) == {1}
    assert all(job["attempts"] == 1 for job in status["jobs"])
    assert {job["backend_id"] for job in status["jobs"]} == {cid for cid, _, _ in condor_jobs}


@pytest.mark.slow
def test_schedd_stopped_during_run_and_started_again_the_run_carries_on(htcondor_pool):
    pool = htcondor_pool
    path = condor_analysis(
        pool, {"gamma": 12, "proton": 8}, "    retries: 1\n    backoff: 0.2\n", n_file_per_job=1
    )
    run = pool.user_popen(
        [sys.executable, "-m", "gridpipe", "run", "-a", str(path), "--poll-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    condor = path / ".gridpipe" / "htcondor"

    def started() -> bool:
        return (condor / "jobs").is_dir() and (condor / "clusters").is_dir()

    out = run_through_outage(run, started, pool.stop_schedd, pool.start_schedd, outage=20, timeout=600)
    assert run.returncode == 0, out
    assert "the analysis is complete" in out
    status = json.loads(gp(pool, "status", "--json", "-a", str(path)).stdout)
    produce = [j for j in status["jobs"] if j["stage"] == "produce"]
    assert len(produce) == 20 and all(j["status"] == "done" and j["attempts"] == 1 for j in produce)
    names = {j["name"] for j in produce}
    per_name = Counter(name for _, name, _ in _condor_jobs(path) if name in names)
    assert len(per_name) == 20 and set(per_name.values()) == {1}
