"""Every benchmark in bench/ runs in its quick mode and prints its numbers: a benchmark that rots fails the build.

No timing is asserted (CI machines vary); what is checked is that the benchmark ran to the end (exit 0) and
printed the lines that carry its numbers.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
NUMBER = r"\d+\.\d+"

# bench -> patterns its output must hold (each with the numbers it measured)
EXPECTED: dict[str, list[str]] = {
    "cli_startup.py": [
        rf"gridpipe --help\s+median\s+{NUMBER} ms",
        rf"ratio gridpipe --help / import typer: {NUMBER}",
    ],
    "plan_status.py": [rf"plan jobs\s+{NUMBER} s", rf"`gridpipe status --json`\s+{NUMBER} s"],
    "engine_overhead.py": [
        rf"process pool \(baseline\)\s+{NUMBER}",
        rf"ratio of best times\s+{NUMBER}",
        rf"before the first job {NUMBER} s, first start to last end {NUMBER} s \({NUMBER}x",
        rf"nothing left to do {NUMBER} s \(python -c pass {NUMBER} s\); the pool plus it alone is {NUMBER}x",
    ],
    "storage_small_files.py": [rf"shutil.copyfile\s+{NUMBER}"],
    "download_bench.py": [rf"cp -r\s+:\s+{NUMBER}", rf"sync jobs=8\s+\(verified\)\s+:\s+{NUMBER}"],
    "merge_bench.py": [
        rf"\ncat\s+{NUMBER}",
        rf"\ngridpipe\s+{NUMBER}",
        r"row totals of the merged files: \[\d+\]",
    ],
    "scale.py": [
        rf"submit --max-jobs 10\s+{NUMBER}s\s+{NUMBER}s",
        rf"status --json\s+{NUMBER}s\s+{NUMBER}s",
        rf"submit --test\s+{NUMBER}s",
        rf"run \(defaults\)\s+{NUMBER}s\s+ratio to the pool\s+{NUMBER}",
    ],
    "service_idle.py": [
        rf"service driving nothing: {NUMBER}% of a core",
        rf"service with \d+ active jobs \(.*\), nothing changing: {NUMBER}% of a core",
    ],
    "service_api.py": [
        rf"status \(counts \+ 100 jobs\)\s+{NUMBER}\s+{NUMBER}",
        rf"job page \(50, random offset\)\s+{NUMBER}\s+{NUMBER}",
        rf"pace \(last hour, 30 buckets\)\s+{NUMBER}\s+{NUMBER}",
    ],
    "dashboard_first_view.py": [
        rf"10 jobs \(baseline\)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+job table: 1-10 of 10",
        rf"2000 jobs\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+job table: 1-50 of 2000",
    ],
    "diracx_raw_bench.py": [rf"submit 40 jobs in calls of 20: {NUMBER} s total"],
    "slurm_bench.py": [
        rf"engine exactly-once submit \(store included\)\s+{NUMBER} s\s+ratio {NUMBER}",
        rf"engine refresh\s+{NUMBER} ms\s+ratio {NUMBER}, 1 Slurm client call\(s\)",
        rf"gridpipe run\s+{NUMBER} s\s+ratio {NUMBER}",
    ],
    "htcondor_bench.py": [
        rf"condor_submit, queue from \(baseline\)\s+{NUMBER} s",
        rf"ratio to condor_submit per round: [0-9. ]+, median {NUMBER}",
        rf"engine exactly-once submit \(store included\)\s+{NUMBER} s\s+ratio {NUMBER} to condor_submit",
        rf"engine refresh\s+{NUMBER} ms\s+ratio {NUMBER}, 1 schedd call\(s\)",
    ],
    "dirac_bench.py": [
        rf"engine exactly-once submit \(store included\)\s+{NUMBER} s",
        r"engine refresh \(store\)\s+\d+ ms",
    ],
}
NEEDS_DIRACX = {"diracx_raw_bench.py", "dirac_bench.py"}
NEEDS_SLURM = {"slurm_bench.py"}
NEEDS_CHROMIUM = {"dashboard_first_view.py"}
NEEDS_HTCONDOR = {"htcondor_bench.py"}


def test_every_bench_is_covered():
    assert sorted(p.name for p in BENCH.glob("[!_]*.py")) == sorted(EXPECTED)


@pytest.mark.slow
@pytest.mark.parametrize("bench", sorted(EXPECTED))
def test_bench_runs_in_quick_mode(bench, tmp_path):
    if bench in NEEDS_DIRACX and importlib.util.find_spec("diracx.routers") is None:
        pytest.skip("the loopback DiracX server needs diracx-routers (the test extra)")
    if bench in NEEDS_CHROMIUM:
        from chromium import missing_reason as no_chromium

        if no_chromium() is not None:
            pytest.skip(no_chromium())
    if bench in NEEDS_SLURM:
        from slurm_cluster import missing_reason

        reason = missing_reason()
        if reason is not None:
            pytest.skip(reason)
    if bench in NEEDS_HTCONDOR:
        from htcondor_pool import missing_reason as htcondor_missing

        reason = htcondor_missing()
        if reason is not None:
            if os.environ.get("GRIDPIPE_REQUIRE_HTCONDOR") == "1":
                pytest.fail(f"the HTCondor pool is required here but cannot be started: {reason}")
            pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(BENCH / bench), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for pattern in EXPECTED[bench]:
        assert re.search(pattern, result.stdout), f"{bench}: no match for {pattern!r} in:\n{result.stdout}"
