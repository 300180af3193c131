"""Idle cost of the background service: its CPU use (percent of one core, from /proc) while it drives an
analysis with N active jobs (default 1,000: a few running a long sleep, the rest queued behind them on the
local backend) and nothing changes, beside the same service driving nothing (the baseline).

    python bench/service_idle.py [--jobs 1000] [--seconds 20] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_helpers import make_analysis, slow_workflow
from service_helpers import running_service

TICKS = os.sysconf("SC_CLK_TCK")
RUNNING = 2
"""Jobs that run at once (the local backend's workers); the others stay queued: all are active."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(pid: int, seconds: float) -> float:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - start)


def active(counts: dict[str, dict[str, int]]) -> int:
    return sum(c.get("queued", 0) + c.get("running", 0) for c in counts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="100 jobs, 3 s (CI)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds = 100, 3.0
    tmp = Path(tempfile.mkdtemp(prefix="gpidle"))
    hold = args.seconds * 3 + 120
    path = make_analysis(
        tmp,
        {"gamma": args.jobs - 1, "proton": 1},
        workflow=slow_workflow(tmp, hold),
        n_file_per_job=1,
        max_workers=RUNNING,
    )
    try:
        with running_service() as svc:
            svc.analyses.append(path)
            pid = svc.start()
            time.sleep(2)
            print(f"service driving nothing: {measure(pid, args.seconds):.2f}% of a core")
            svc.cli("service", "add", path, "--max-active", str(args.jobs))
            deadline = time.monotonic() + 300
            with svc.client() as client:
                while active(client.status(path, limit=0)["stages"].get("produce", {})) < args.jobs:
                    state = client.analysis(path)
                    if state["state"] == "error" or time.monotonic() > deadline:
                        raise SystemExit(f"the jobs were not all submitted: {state['message']}")
                    time.sleep(0.5)
            time.sleep(2)  # the cycle that saw the last submission settles
            print(
                f"service with {args.jobs} active jobs ({RUNNING} running, the rest queued), nothing changing: "
                f"{measure(pid, args.seconds):.2f}% of a core"
            )
            svc.cli("service", "pause", path)
            from gridpipe.service.context import Analysis
            from gridpipe.service.jobs import kill

            with Analysis.open(path) as an:
                kill(an, [], stage=None, all_jobs=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after the service and executors have ended


if __name__ == "__main__":
    main()
