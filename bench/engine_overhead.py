"""Engine overhead: N no-op jobs through `gridpipe run` (local backend) versus the same N commands
through a plain concurrent.futures process pool, measured in the same run.

    python bench/engine_overhead.py [--jobs 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_helpers import make_analysis

WORKFLOW = """version: 1
tree:
  directories: [data/simtel, logs]
  files: [{path: configs/grid.yaml, template: configs/grid.yaml.j2}]
inputs: {gamma_in: data/simtel/gamma_in.list}
stages:
  - name: noop
    units: [gamma]
    input_list: "{particle}_in"
    data_type: NOOP
    job_name: "{analysis}_NOOP_{particle}_{token}"
    output: "NOOP_{particle}_{token}.txt"
    command: ["touch {output}"]
"""


def _touch(path: str) -> int:
    return subprocess.run(["touch", path], check=True).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workflow = root / "noop.yaml"
        workflow.write_text(WORKFLOW)
        path = make_analysis(
            root, {"gamma": args.jobs}, n_file_per_job=1, workflow=workflow, max_workers=args.workers
        )
        outdir = root / "pool"
        outdir.mkdir()
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(_touch, [str(outdir / f"out{i}.txt") for i in range(args.jobs)], chunksize=1))
        pool_s = time.perf_counter() - started

        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gridpipe",
                "run",
                "-a",
                str(path),
                "--max-active",
                str(args.jobs),
            ],
            capture_output=True,
            text=True,
        )
        engine_s = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stdout[-2000:] + result.stderr[-2000:])
    print(f"{args.jobs} no-op jobs, {args.workers} workers")
    print(f"  process pool (baseline)   {pool_s:7.2f} s  {args.jobs / pool_s:7.1f} jobs/s")
    print(f"  gridpipe run (local)      {engine_s:7.2f} s  {args.jobs / engine_s:7.1f} jobs/s")
    print(f"  ratio engine / pool       {engine_s / pool_s:7.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
