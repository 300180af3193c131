"""End-to-end scale through the real CLI: N-line input lists -> `submit --dry-run` -> `submit` (records all N
jobs, submits a capped number) -> `status`, `status --jobs`, `status --json`; the same for parameter sweeps of
N/10 values; then `gridpipe run` of R no-op jobs with its defaults, with `--max-active R`, and a plain
process pool. Every command is a subprocess; its wall time and peak memory (its own rusage) are printed for
each size with the growth between sizes (linear: x3.0 and x10.0), beside baselines measured in the same run:
`wc -l` of the list, Python reading it, SQLite inserting N rows in one transaction, `gridpipe --help`.

    python bench/scale.py [--sizes 10000,30000,100000] [--run-jobs 1000] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _installed import compile_gridpipe
from engine_helpers import make_analysis, noop_workflow, wait_executor_gone

from gridpipe.analysis.create import CreateRequest, create_analysis

GP = [sys.executable, "-m", "gridpipe"]


@dataclass
class Measure:
    """One command's wall time (None: timed out), CPU time and peak resident memory (MB)."""

    seconds: float | None
    peak_mb: float = 0.0
    cpu: float = 0.0


# A small launcher runs each command: its rusage of children is the command's own. (A child forked from
# this process would report at least this process's size as its peak: Linux keeps the pre-exec peak.)
# The timeout is a timer that kills the command: `subprocess.run(timeout=...)` polls the child every 50 ms,
# which would round every wall time up to the next 50 ms.
LAUNCHER = """import resource, subprocess, sys, threading, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
timer = threading.Timer(float(sys.argv[1]), child.kill)
timer.start()
rc = child.wait()
wall = time.perf_counter() - started
timer.cancel()
u = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.write(f"\\nGP_BENCH {wall} {u.ru_utime + u.ru_stime} {u.ru_maxrss} {rc}\\n")
"""
REPEATS = 5
"""Read-only commands (status, --help, wc) run this many times; the median wall time is shown."""


def measure_median(cmd: Sequence[str], timeout: float, repeats: int = REPEATS) -> Measure:
    """A read-only command run `repeats` times: the median wall and CPU time, the highest peak RSS."""
    runs = [measure(cmd, timeout) for _ in range(repeats)]
    if any(m.seconds is None for m in runs):
        return next(m for m in runs if m.seconds is None)
    return Measure(
        statistics.median(m.seconds or 0.0 for m in runs),
        max(m.peak_mb for m in runs),
        statistics.median(m.cpu for m in runs),
    )


def measure(cmd: Sequence[str], timeout: float, cwd: Path | None = None) -> Measure:
    """Run `cmd` (output discarded) through the launcher: wall time, CPU time and its own peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(timeout), *cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("GP_BENCH ")]
    if not lines:
        sys.exit(f"launcher failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    wall, cpu, peak_kb, rc = lines[-1].split()[1:]
    if rc == "-9":
        return Measure(None, int(peak_kb) / 1024, float(cpu))
    if rc != "0":
        sys.exit(f"failed ({rc}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return Measure(float(wall), int(peak_kb) / 1024, float(cpu))


def timed(fn: Callable[[], object]) -> Measure:
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    return Measure(time.perf_counter() - started, 0.0, time.process_time() - cpu)


def _lfns(n: int) -> str:
    return "".join(
        f"/vo.cta.in2p3.fr/MC/PROD/gamma/gamma_20deg_0deg_run{i}___cta.simtel.zst\n" for i in range(1, n + 1)
    )


def _sqlite_insert(path: Path, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT UNIQUE, spec TEXT)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (name, spec) VALUES (?, ?)",
        (
            (f"job{i}", json.dumps({"inputs": [f"/lfn/{i}"], "commands": [["touch", f"out{i}"]]}))
            for i in range(n)
        ),
    )
    conn.execute("COMMIT")
    conn.close()


def _noop_analysis(root: Path, name: str, sweep: int, lfns: str) -> Path:
    workflow = noop_workflow(root / f"{name}.yaml", sweep=sweep)
    path = create_analysis(CreateRequest(name=name, analyses_dir=root, workflow=workflow)).path
    (path / "data" / "simtel" / "gamma_in.list").write_text(lfns)
    return path


def cli_steps(path: Path, stage: str, timeout: float, test: bool) -> dict[str, Measure]:
    """submit --dry-run, [submit --test], submit --max-jobs 10 (records all), status, --jobs, --json."""
    a = ["-a", str(path)]
    out = {"submit --dry-run": measure([*GP, "submit", "--stage", stage, "--dry-run", *a], timeout)}
    if test:
        out["submit --test"] = measure([*GP, "submit", "--stage", stage, "--test", *a], timeout)
    out["submit --max-jobs 10"] = measure([*GP, "submit", "--stage", stage, "--max-jobs", "10", *a], timeout)
    out["status"] = measure_median([*GP, "status", *a], timeout)
    out["status --jobs"] = measure_median([*GP, "status", "--jobs", *a], timeout)
    out["status --json"] = measure([*GP, "status", "--json", *a], timeout)
    return out


def jobs_at(root: Path, n: int, timeout: float) -> dict[str, Measure]:
    """The baselines and the CLI steps on an analysis with an n-line list (one file per job)."""
    lfns = _lfns(n)
    path = _noop_analysis(root, f"n{n}", 0, lfns)
    listing = path / "data" / "simtel" / "gamma_in.list"
    out = {
        "baseline: wc -l list": measure_median(["wc", "-l", str(listing)], timeout),
        "baseline: python reads list": timed(lambda: listing.read_text().split()),
        "baseline: sqlite inserts N": timed(lambda: _sqlite_insert(root / f"base{n}.db", n)),
        "baseline: gridpipe --help": measure_median([*GP, "--help"], timeout),
    }
    out.update(cli_steps(path, "noop", timeout, test=False))
    return out


def sweep_at(root: Path, values: int, timeout: float) -> dict[str, Measure]:
    """The CLI steps on a stage swept over `values` values of one input file (one job per unit)."""
    path = _noop_analysis(root, f"s{values}", values, _lfns(1))
    return cli_steps(path, "noop", timeout, test=True)


def _touch(path: str) -> int:
    return subprocess.run(["touch", path], check=True).returncode


def run_compare(root: Path, jobs: int, workers: int, timeout: float) -> dict[str, Measure]:
    """`gridpipe run` of `jobs` no-op grid jobs with its defaults and with --max-active, against a pool."""
    workflow = noop_workflow(root / "noop_run.yaml")
    out: dict[str, Measure] = {}
    outdir = root / "pool"
    outdir.mkdir()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_touch, [str(outdir / f"out{i}.txt") for i in range(jobs)], chunksize=1))
    out["baseline: process pool"] = Measure(time.perf_counter() - started)
    for label, extra in (("run (defaults)", []), ("run --max-active N", ["--max-active", str(jobs)])):
        path = make_analysis(
            Path(tempfile.mkdtemp(dir=root)),
            {"gamma": jobs},
            n_file_per_job=1,
            workflow=workflow,
            max_workers=workers,
        )
        out[label] = measure([*GP, "run", "-a", str(path), *extra], timeout)
    return out


def _fmt(m: Measure | None) -> str:
    if m is None:
        return f"{'-':>8}"
    return f"{'timeout':>8}" if m.seconds is None else f"{m.seconds:7.3f}s"


def report(
    title: str, sizes: Sequence[int], results: dict[int, dict[str, Measure]], startup_cpu: float
) -> None:
    """Wall and CPU seconds per size, the growth of the CPU beyond start-up, the peak memory at the largest."""
    steps = list(results[sizes[0]])
    print(f"\n{title}")
    walls = "".join(f"{n:>9}" for n in sizes)
    cpus = "".join(f"{n:>8}" for n in sizes)
    growth = "".join(f"{f'x{b / a:.3g}':>8}" for a, b in itertools.pairwise(sizes))
    print(f"  {'step':28}  wall at{walls}   CPU s at{cpus}   growth{growth}   peak MB")
    for step in steps:
        wall = "".join(f" {_fmt(results[n].get(step))}" for n in sizes)
        cpu = "".join(f" {results[n][step].cpu:7.2f}" for n in sizes)
        ratios = ""
        for a, b in itertools.pairwise(sizes):
            ca = results[a][step].cpu - (startup_cpu if results[a][step].peak_mb else 0.0)
            cb = results[b][step].cpu - (startup_cpu if results[b][step].peak_mb else 0.0)
            ratios += f" {cb / ca:7.2f}" if ca > 0.005 and results[b][step].seconds else f" {'-':>7}"
        peak = results[sizes[-1]][step].peak_mb
        print(f"  {step:28}  {wall}   {cpu}   {ratios}   " + (f"{peak:7.1f}" if peak else ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,30000,100000", help="jobs per analysis, comma-separated")
    parser.add_argument("--sweep-divisor", type=int, default=10, help="sweep values = size / this")
    parser.add_argument("--run-jobs", type=int, default=1000, help="no-op jobs for the `run` comparison")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a step is given up")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI: it runs; no timing targets)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.run_jobs, args.timeout = "100,300", 10, 120.0
    sizes = [int(s) for s in args.sizes.split(",")]
    print(compile_gridpipe())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs = {n: jobs_at(root, n, args.timeout) for n in sizes}
        swept = sizes[-1:] if args.quick else sizes  # quick: one sweep size (CI time)
        sweeps = {
            n // args.sweep_divisor: sweep_at(root, n // args.sweep_divisor, args.timeout) for n in swept
        }
        run = run_compare(root, args.run_jobs, args.workers, args.timeout)
        for lock in root.glob("**/.gridpipe/local/executor.lock"):  # the local executors exit when idle
            wait_executor_gone(lock.parents[2], timeout=120)
    startup = jobs[sizes[0]]["baseline: gridpipe --help"].cpu
    print(
        f"growth: CPU seconds beyond start-up (`gridpipe --help`: {startup:.2f} s CPU), one size over the last"
    )
    report(
        "jobs (one input file per job; `submit --max-jobs 10` records all and submits 10)",
        sizes,
        jobs,
        startup,
    )
    report("sweeps (one unit per value, one job per unit)", sorted(sweeps), sweeps, startup)
    print(f"\n{args.run_jobs} no-op jobs through `gridpipe run`, {args.workers} workers")
    pool = run["baseline: process pool"].seconds or 1.0
    for label, m in run.items():
        ratio = f"  ratio to the pool {m.seconds / pool:5.2f}" if m.seconds else ""
        print(f"  {label:32} {_fmt(m)}{ratio}")
    largest = jobs[sizes[-1]]
    print(
        f"\ntargets at {sizes[-1]} jobs: submit < 5 s: {_fmt(largest['submit --max-jobs 10']).strip()}; "
        f"status < 0.3 s: {_fmt(largest['status']).strip()} "
        f"(start-up alone {_fmt(largest['baseline: gridpipe --help']).strip()}); "
        f"status --jobs < 1 s: {_fmt(largest['status --jobs']).strip()}; "
        f"status --json < 150 MB: {largest['status --json'].peak_mb:.0f} MB"
    )
    print(
        f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
