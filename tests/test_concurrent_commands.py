"""Other gridpipe commands on an analysis while `gridpipe run` drives it: none fails, nothing is run twice,
and in the end the job store says exactly what the backend says (kills landing mid-run included)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading

from engine_helpers import make_analysis, slow_workflow, start_run

from gridpipe.backends.local_queue import LocalQueue

ACTIVE = ("planned", "queued", "running")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridpipe", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_status_logs_kill_and_dry_runs_alongside_a_run(tmp_path):
    path = make_analysis(
        tmp_path, {"gamma": 20, "proton": 10}, workflow=slow_workflow(tmp_path, 0.5), n_file_per_job=1
    )
    where = str(path)
    run = start_run(path, "--max-active", "30")  # every job waits in the queue: kills land
    stop = threading.Event()
    problems: list[str] = []
    kills: list[str] = []
    rng = random.Random(7)

    def status() -> dict:
        result = _cli("status", "--json", "-a", where)
        if result.returncode:
            problems.append(f"status: {result.stderr}")
            return {"jobs": []}
        return json.loads(result.stdout)

    def hammer(kind: str) -> None:
        while not stop.is_set():
            result = None
            if kind == "logs":
                ended = [j["name"] for j in status()["jobs"] if j["status"] not in ACTIVE]
                result = _cli("logs", rng.choice(ended), "-a", where) if ended else None
            elif kind == "kill" and len(kills) < 4:
                active = [j["name"] for j in status()["jobs"] if j["status"] in ("queued", "running")]
                if active:
                    victim = rng.choice(active)
                    result = _cli("kill", victim, "-a", where)
                    if "killed 1 job(s)" in result.stdout:
                        kills.append(victim)
            elif kind == "jobs":
                result = _cli("status", "--jobs", "-a", where)
            elif kind == "dry":
                result = _cli("submit", "--output_type", "TRAINING", "--dry-run", "-a", where)
            else:
                stop.wait(0.1)
            if result is not None and result.returncode:
                problems.append(f"{kind}: {result.stderr}")

    threads = [threading.Thread(target=hammer, args=(k,)) for k in ("logs", "kill", "jobs", "dry")]
    for thread in threads:
        thread.start()
    try:
        out, err = run.communicate(timeout=300)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []
    # the run ends complete, or stopped by the kills (the local stage waits for every grid job)
    assert run.returncode == (1 if kills else 0), out + err
    final = status()["jobs"]
    grid = [j for j in final if j["stage"] == "produce"]
    assert len(grid) == 30
    assert {j["name"] for j in grid if j["status"] == "killed"} == set(kills)
    assert all(j["status"] == "done" for j in grid if j["name"] not in kills)
    queue = LocalQueue(path / ".gridpipe" / "local")
    try:
        starts = [name for _, name in queue.ledger()]
        backend = {str(row.id): row.status for row in queue.rows([j["backend_id"] for j in grid])}
    finally:
        queue.close()
    assert len(starts) == len(set(starts))  # nothing ran twice
    assert {j["name"]: backend[j["backend_id"]] for j in grid} == {j["name"]: j["status"] for j in grid}
