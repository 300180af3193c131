"""Exactly once on Slurm: kill -9 of `gridpipe submit` at many points of a 200-job submission, then
submit again: every job ran exactly once (the worker's own exit records and Slurm's job ids say so);
and slurmctld stopped during `gridpipe run` and started again: the run carries on, nothing lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from engine_helpers import gridpipe, make_analysis, run_through_outage, use_backend

N_JOBS = 200


def _slurm_jobs(cluster, path) -> list[tuple[str, str, str]]:
    """(id, name, state) of every job of the analysis at `path` the cluster knows (by its folder: other
    tests' analyses have jobs of the same names): squeue's, and with accounting sacct's for jobs that left it
    (accounting keeps no comments here, as by default, so the marker is not used)."""
    out = cluster.client("squeue", "-h", "-t", "all", "-o", "%i|%T|%Z|%j").stdout
    rows = {r[0]: r for r in (line.split("|", 3) for line in out.splitlines())}
    if cluster.accounting is not None:
        argv = ["sacct", "-n", "-P", "-X", "--starttime=now-1day", "-o", "JobIDRaw,State,WorkDir,JobName"]
        for line in cluster.client(*argv).stdout.splitlines():
            r = line.split("|", 3)
            rows.setdefault(r[0], r)
    jobs = f"{path / '.gridpipe' / 'slurm' / 'jobs'}/"
    return [(r[0], r[3], r[1]) for r in rows.values() if len(r) == 4 and r[2].startswith(jobs)]


def _wait_all_ended(cluster, path, names: set[str], timeout: float = 300) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [j for j in _slurm_jobs(cluster, path) if j[1] in names]
        if {j[1] for j in jobs} == names and all(
            state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING") for *_, state in jobs
        ):
            return jobs
        assert time.monotonic() < deadline, Counter(state for *_, state in jobs)
        time.sleep(0.5)


def kill_submissions_then_finish(cluster, tmp_path, n_jobs: int, step: int) -> None:
    """kill -9 `gridpipe submit` of n_jobs at every `step` jobs (10 or more points), submit once more to the
    end, then prove that every job ran exactly once and that `status` is exact."""
    path = make_analysis(tmp_path, {"gamma": n_jobs}, n_file_per_job=1)
    use_backend(path, "slurm")
    jobs_dir = path / ".gridpipe" / "slurm" / "jobs"
    kills = 0
    for threshold in range(3, n_jobs, step):
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridpipe", "submit", "--output_type", "TRAINING", "-a", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if jobs_dir.is_dir() and sum(1 for _ in jobs_dir.glob("*/*/batch.sh")) >= threshold:
                break
            time.sleep(0.001)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 10, f"only {kills} submissions were still running when killed"
    final = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), timeout=300)
    assert final.returncode == 0, final.stderr
    names = {p.name for p in jobs_dir.iterdir()}
    assert len(names) == n_jobs
    slurm = _wait_all_ended(cluster, path, names)
    per_name = Counter(name for _, name, _ in slurm)
    assert len(per_name) == n_jobs and set(per_name.values()) == {1}, per_name.most_common(3)
    assert {state for *_, state in slurm} == {"COMPLETED"}
    records = Counter(p.parent.parent.name for p in jobs_dir.glob("*/*/job.exit.json"))
    assert len(records) == n_jobs and set(records.values()) == {1}
    status = json.loads(gridpipe("status", "--json", "-a", str(path), timeout=120).stdout)
    assert status["stages"]["produce"] == {"gamma": {"done": n_jobs}}
    assert all(job["attempts"] == 1 for job in status["jobs"])
    assert {job["backend_id"] for job in status["jobs"]} == {slurm_id for slurm_id, _, _ in slurm}


@pytest.mark.slow
def test_kill_9_during_a_slurm_submission_never_loses_or_duplicates(slurm_cluster, tmp_path):
    kill_submissions_then_finish(slurm_cluster, tmp_path, N_JOBS, 15)  # 14 kill points


@pytest.mark.slow
def test_slurmctld_stopped_during_run_and_started_again_the_run_carries_on(slurm_cluster, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 12, "proton": 8}, n_file_per_job=1)
    use_backend(path, "slurm", "    retries: 1\n    backoff: 0.2\n    command_timeout: 20\n")
    run = subprocess.Popen(
        [sys.executable, "-m", "gridpipe", "run", "-a", str(path), "--poll-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    jobs = path / ".gridpipe" / "slurm" / "jobs"

    def started() -> bool:
        return jobs.is_dir() and any(jobs.glob("*/*/batch.sh"))

    stop, start = slurm_cluster.stop_controller, slurm_cluster.start_controller
    out = run_through_outage(run, started, stop, start, outage=60, timeout=400)
    assert run.returncode == 0, out
    assert "the analysis is complete" in out
    status = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)
    produce = [j for j in status["jobs"] if j["stage"] == "produce"]
    assert len(produce) == 20 and all(j["status"] == "done" and j["attempts"] == 1 for j in produce)
    names = {j["name"] for j in produce}
    per_name = Counter(name for _, name, _ in _slurm_jobs(slurm_cluster, path) if name in names)
    assert len(per_name) == 20 and set(per_name.values()) == {1}
