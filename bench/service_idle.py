"""Idle cost of the background service: its CPU use (percent of one core) while it drives an analysis
whose N jobs all run (sleep) and nothing changes, and while it drives nothing.

    python bench/service_idle.py [--jobs 30] [--seconds 10] [--quick]
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(pid: int, seconds: float) -> float:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="5 jobs, 2 s (CI)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.seconds = 5, 2.0
    tmp = Path(tempfile.mkdtemp(prefix="gpidle"))
    hold = args.seconds * 3 + 30
    path = make_analysis(
        tmp,
        {"gamma": args.jobs, "proton": 1},
        workflow=slow_workflow(tmp, hold),
        n_file_per_job=1,
        max_workers=args.jobs + 1,
    )
    try:
        with running_service() as svc:
            svc.analyses.append(path)
            pid = svc.start()
            time.sleep(2)
            print(f"service driving nothing: {measure(pid, args.seconds):.2f}% of a core")
            svc.cli("service", "add", path, "--max-active", str(args.jobs + 1))
            deadline = time.monotonic() + 120
            with svc.client() as client:
                while (
                    client.status(path, limit=0)["stages"]
                    .get("produce", {})
                    .get("gamma", {})
                    .get("running", 0)
                    < args.jobs
                ):
                    if time.monotonic() > deadline:
                        raise SystemExit("the jobs did not all start")
                    time.sleep(0.5)
            print(
                f"service with {args.jobs + 1} active jobs, nothing changing: {measure(pid, args.seconds):.2f}% of a core"
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
