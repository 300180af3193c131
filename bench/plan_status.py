"""Planning and status at scale: N input LFNs planned into jobs (time, peak memory), then `gridpipe status`
on a store holding N jobs, against baselines measured in the same run.

    python bench/plan_status.py [--lfns 100000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.service.context import Analysis
from gridpipe.service.planning import plan_units, record_plan


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median(cmd: list[str], n: int = 5) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[n // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lfns", type=int, default=100_000)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    runs = 5
    if args.quick:
        args.lfns, runs = 500, 1
    with tempfile.TemporaryDirectory() as tmp:
        path = create_analysis(CreateRequest(name="bench", analyses_dir=Path(tmp), n_file_per_job=1)).path
        lst = path / "data" / "simtel" / "gamma_energy.list"
        lst.write_text(
            "".join(
                f"/vo.cta.in2p3.fr/MC/PROD/gamma/gamma_20deg_0deg_run{i}___cta.simtel.zst\n"
                for i in range(1, args.lfns + 1)
            )
        )
        before = _peak_mb()
        started = time.perf_counter()
        baseline = lst.read_text().split()
        read_s = time.perf_counter() - started
        an = Analysis.open(path)
        stage = an.workflow.stage("training_energy")
        started = time.perf_counter()
        plan = plan_units(an, stage, check_storage=False)
        plan_s = time.perf_counter() - started
        started = time.perf_counter()
        record_plan(an, plan)
        record_s = time.perf_counter() - started
        peak = _peak_mb()
        an.close()
        gp = [sys.executable, "-m", "gridpipe"]
        status_s = _median([*gp, "status", "--no-refresh", "-a", str(path)], runs)
        json_s = _median([*gp, "status", "--no-refresh", "--json", "-a", str(path)], runs)
        help_s = _median([*gp, "--help"], runs)
    print(f"{args.lfns} LFNs, 1 file per job -> {len(plan.new)} jobs")
    print(f"  read the list (baseline)       {read_s:7.3f} s  ({len(baseline)} lines)")
    print(f"  plan jobs                      {plan_s:7.3f} s  ratio {plan_s / read_s:6.1f}")
    print(f"  record them in the store       {record_s:7.3f} s")
    print(f"  peak memory                    {peak:7.1f} MB (before planning: {before:.1f} MB)")
    print(f"  `gridpipe --help` (baseline)   {help_s:7.3f} s")
    print(f"  `gridpipe status`              {status_s:7.3f} s  ratio {status_s / help_s:6.2f}")
    print(f"  `gridpipe status --json`       {json_s:7.3f} s  ratio {json_s / help_s:6.2f}")


if __name__ == "__main__":
    main()
