"""Baseline: raw diracx-client calls against a loopback DiracX server (run by hand, prints numbers).

    /work/venv/bin/python bench/diracx_raw_bench.py [--jobs 2000]

Starts the test server of tests/diracx_server.py in a temporary directory, submits N jobs in calls of 20,
then times one search of all N ids (single page and paged), a summary and one bulk status update.
These are the floor the DIRAC backend's own numbers are compared with.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from diracx.client.models import JobStatusUpdate
from diracx_server import DiracxServer, running_server, search_all, search_page


def timed(fn):
    """Run fn() once; return (seconds, result)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(server: DiracxServer, n: int) -> dict[str, float]:
    """Submit n jobs by 20, then time the bulk reads and one bulk status update; seconds per item."""
    jdl = 'Executable = "echo"; Arguments = "{i}"; JobName = "bench_{i:05d}"; JobGroup = "bench";'
    out: dict[str, float] = {}
    with server.client(server.user_credentials) as c:
        calls, ids = [], []
        for start in range(0, n, 20):
            texts = [jdl.format(i=i) for i in range(start, min(start + 20, n))]
            dt, inserted = timed(lambda texts=texts: c.jobs.submit_jdl_jobs(texts))
            calls.append(dt)
            ids += [job.job_id for job in inserted]
        out |= {
            "submit_total": sum(calls),
            "submit_median": statistics.median(calls),
            "submit_max": max(calls),
        }
        by_id = [{"parameter": "JobID", "operator": "in", "values": ids}]
        params = ["JobID", "JobName", "Status", "MinorStatus", "Site"]
        out["search_one"], (rows, total) = timed(
            lambda: search_page(c, by_id, params, page=1, per_page=10_000)
        )
        out["search_paged"], paged = timed(lambda: search_all(c, by_id, params, per_page=1000))
        out["search_default"], default_rows = timed(lambda: c.jobs.search(search=by_id, parameters=params))
        out["summary"], _ = timed(lambda: c.jobs.summary(grouping=["Status"], search=by_id))
        update = {datetime.now(UTC).isoformat(): JobStatusUpdate(status="Checking", source="bench")}
        out["set_status"], _ = timed(lambda: c.jobs.set_job_statuses({str(j): update for j in ids}))
    assert len(rows) == total == len(paged) == n and len(default_rows) == min(n, 100)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    n = 40 if args.quick else args.jobs
    with tempfile.TemporaryDirectory(prefix="diracx-bench-") as tmp, contextlib.ExitStack() as stack:
        t_start, server = timed(lambda: stack.enter_context(running_server(Path(tmp))))
        m = measure(server, n)
    ms = {k: v * 1e3 for k, v in m.items()}
    print(f"server start (moto + uvicorn, ready): {t_start:.2f} s")
    print(
        f"submit {n} jobs in calls of 20: {m['submit_total']:.2f} s total, median {ms['submit_median']:.0f} "
        f"ms/call, max {ms['submit_max']:.0f} ms, {ms['submit_total'] / n:.2f} ms/job"
    )
    print(f"search {n} ids, one page (per_page=10000): {ms['search_one']:.0f} ms")
    print(
        f"search {n} ids, paged per_page=1000: {ms['search_paged']:.0f} ms "
        f"(ratio to one page {m['search_paged'] / m['search_one']:.2f})"
    )
    print(f"search {n} ids without per_page: {ms['search_default']:.0f} ms, only 100 rows back (the trap)")
    print(f"summary by Status over {n} ids: {ms['summary']:.0f} ms")
    print(f"set_job_statuses, one call for {n} jobs: {ms['set_status']:.0f} ms")


if __name__ == "__main__":
    main()
