"""Latency of the service's API on a large analysis (half its jobs done within the hour, the rest planned):
`GET /v1/analyses/{id}/status` (counts and the first 100 jobs), job pages (50 jobs at a random offset,
unfiltered and filtered by state) and `pace` (throughput and time to completion over the last hour), p50 and
p99 over the real Unix socket, beside `GET /v1/health` (the HTTP round trip alone) as the baseline.

    python bench/service_api.py [--jobs 100000] [--requests 200] [--quick]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_helpers import noop_workflow
from service_helpers import running_service

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.core.models import BackendStatus
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.service.planning import plan_units, record_plan


def big_analysis(root: Path, jobs: int, done: int = 0) -> Path:
    """An analysis with `jobs` jobs in its store: the first `done` of them submitted and done (recorded as a
    local backend would report them), the others planned."""
    workflow = noop_workflow(root / "noop.yaml")
    path = create_analysis(CreateRequest(name="big", analyses_dir=root, workflow=workflow)).path
    (path / "data" / "simtel" / "gamma_in.list").write_text(
        "".join(f"/vo.cta.in2p3.fr/MC/PROD/gamma/gamma_run{i}.simtel.zst\n" for i in range(1, jobs + 1))
    )
    with Analysis.open(path) as an:
        (stage,) = an.workflow.stages
        record_plan(an, plan_units(an, stage, check_storage=False))
        names = [j.name for j in an.store.jobs(limit=done)] if done else []
        if names:
            an.store.begin_attempts(names, "local")
            an.store.confirm_submitted({n: str(i) for i, n in enumerate(names)})
            an.store.apply_statuses(
                "local", [BackendStatus(str(i), JobStatus.DONE) for i in range(len(names))]
            )
    return path


def percentiles(call: Callable[[], object], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 20 requests (CI)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.requests = 2000, 20
    root = Path(tempfile.mkdtemp(prefix="gpapi"))
    started = time.perf_counter()
    path = big_analysis(root, args.jobs, done=args.jobs // 2)
    print(
        f"analysis with {args.jobs} jobs ({args.jobs // 2} done) made in {time.perf_counter() - started:.1f} s"
    )
    rng = random.Random(1)
    try:
        with running_service() as svc:
            svc.start()
            with svc.client() as client:
                client.add(path, paused=True)  # readable, not driven
                rows = [
                    ("GET /v1/health (baseline)", lambda: client.health()),
                    ("status (counts + 100 jobs)", lambda: client.status(path, limit=100)),
                    (
                        "job page (50, random offset)",
                        lambda: client.jobs(path, offset=rng.randrange(args.jobs - 50), limit=50),
                    ),
                    ("pace (last hour, 30 buckets)", lambda: client.pace(path)),
                    (
                        "job page (50, status=planned)",
                        lambda: client.jobs(
                            path, status=["planned"], offset=rng.randrange(args.jobs - 50), limit=50
                        ),
                    ),
                ]
                print(f"{'request':34} {'p50 ms':>9} {'p99 ms':>9}   ({args.requests} requests each)")
                for label, call in rows:
                    p50, p99 = percentiles(call, args.requests)
                    print(f"{label:34} {p50:9.2f} {p99:9.2f}")

    finally:
        shutil.rmtree(root, ignore_errors=True)  # after the service and executors have ended


if __name__ == "__main__":
    main()
