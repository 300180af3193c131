"""Engine overhead: N no-op jobs through `gridpipe run` with its defaults (local backend) versus the same N commands
through a plain concurrent.futures process pool, measured in the same run, in alternating rounds (this
machine's file-system latency swings by several times from minute to minute; best and median are shown).

Each gridpipe job is a full grid job: its input is staged from the local storage, `touch {output}` runs,
the output is registered (size + Adler-32) and, once all are done, `run` downloads and verifies the N
outputs into data/NOOP/gamma/. The pool only runs `touch`.

    python bench/engine_overhead.py [--jobs 1000,3000] [--workers 2] [--rounds 5] [--scratch DIR]

Both sides create a few files per job. On ext4, creating files soon after many were deleted (the bench's own
earlier rounds, a test run) makes the inode allocator skip the recently freed inodes one by one: file creation
then costs up to ten times more and both sides slow down, unevenly, from round to round. `--scratch` on a
tmpfs (e.g. /dev/shm) measures the engine without that.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _installed import compile_gridpipe
from engine_helpers import make_analysis, noop_workflow


def _touch(path: str) -> int:
    return subprocess.run(["touch", path], check=True).returncode


def _pool(root: Path, jobs: int, workers: int) -> float:
    outdir = Path(tempfile.mkdtemp(dir=root))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_touch, [str(outdir / f"out{i}.txt") for i in range(jobs)], chunksize=1))
    return time.perf_counter() - started


def _engine(root: Path, jobs: int, workers: int) -> tuple[float, tuple[float, float], Path]:
    workflow = noop_workflow(root / "noop.yaml")
    path = make_analysis(
        Path(tempfile.mkdtemp(dir=root)),
        {"gamma": jobs},
        n_file_per_job=1,
        workflow=workflow,
        max_workers=workers,
    )
    launched = time.time()
    elapsed = _timed(_run_command(path))
    return elapsed, _job_span(path, launched), path


def _run_command(path: Path) -> list[str]:
    """`gridpipe run` of the analysis at `path` with its defaults, as a user types it."""
    return [sys.executable, "-m", "gridpipe", "run", "-a", str(path)]


def _timed(command: list[str]) -> float:
    """Seconds `command` takes; its output ends the bench when it fails."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(result.stdout[-2000:] + result.stderr[-2000:])
    return elapsed


def _fixed_costs(path: Path, rounds: int) -> tuple[float, float]:
    """Medians of `gridpipe run` on the complete analysis at `path` (start, validate the configs, find
    nothing to do, report, exit: what any run pays, whatever its jobs) and of the bare interpreter."""
    again = [_timed(_run_command(path)) for _ in range(rounds)]
    bare = [_timed([sys.executable, "-c", "pass"]) for _ in range(rounds)]
    return statistics.median(again), statistics.median(bare)


def _job_span(path: Path, launched: float) -> tuple[float, float]:
    """Seconds from the launch of `run` until its first job started and until its last job ended (the local
    queue's own times): what comes before and after is the engine's start and end."""
    queue = sqlite3.connect(path / ".gridpipe" / "local" / "queue.db")
    try:
        row = queue.execute("SELECT MIN(started), MAX(ended) FROM jobs").fetchone()
    finally:
        queue.close()
    first, last = (datetime.fromisoformat(t).timestamp() - launched for t in row)
    return first, last


def fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (from /proc/mounts; '?' where it cannot tell)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    real = str(path.resolve())
    found = [
        (point, kind) for point, kind in mounts if real == point or real.startswith(point.rstrip("/") + "/")
    ]
    return max(found, key=lambda m: len(m[0]))[1] if found else "?"


def compare(root: Path, jobs: int, workers: int, rounds: int) -> None:
    """Alternating pool and engine rounds for `jobs` jobs; print every round and the ratios."""
    pool_s: list[float] = []
    engine_s: list[float] = []
    spans: list[tuple[float, float]] = []
    for _ in range(rounds):
        pool_s.append(_pool(root, jobs, workers))
        elapsed, span, path = _engine(root, jobs, workers)
        engine_s.append(elapsed)
        spans.append(span)
    print(f"{jobs} no-op jobs, {workers} workers, {rounds} alternating rounds")
    print("  process pool (baseline)   " + "  ".join(f"{t:5.2f}" for t in pool_s) + " s")
    print("  gridpipe run (defaults)   " + "  ".join(f"{t:5.2f}" for t in engine_s) + " s")
    print(
        "  ratio per round           "
        + "  ".join(f"{e / p:5.2f}" for p, e in zip(pool_s, engine_s, strict=True))
    )
    best = min(engine_s) / min(pool_s)
    median = statistics.median(engine_s) / statistics.median(pool_s)
    print(f"  ratio of best times {best:5.2f}, of medians {median:5.2f}  (target <= 1.3)")
    print(
        "  gridpipe: first job started  "
        + "  ".join(f"{first:5.2f}" for first, _ in spans)
        + " s after launch"
    )
    print(
        "            last job ended     "
        + "  ".join(f"{last:5.2f}" for _, last in spans)
        + " s (then the final gather and exit)"
    )
    head = statistics.median(first for first, _ in spans)
    body = statistics.median(last - first for first, last in spans)
    tail = statistics.median(e - last for e, (_, last) in zip(engine_s, spans, strict=True))
    pool = statistics.median(pool_s)
    print(
        f"  medians: before the first job {head:.2f} s, first start to last end {body:.2f} s "
        f"({body / pool:.2f}x the pool's whole run), after the last job {tail:.2f} s"
    )
    again, bare = _fixed_costs(path, max(3, rounds))
    print(
        f"  fixed cost: `gridpipe run` with nothing left to do {again:.2f} s (python -c pass {bare:.2f} s); "
        f"the pool plus it alone is {(pool + again) / pool:.2f}x the pool"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", default="1000,3000", help="job counts, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating pool/engine rounds")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="folder for the runs (default: the temp dir)"
    )
    args = parser.parse_args()
    print(compile_gridpipe())
    if args.quick:
        args.jobs, args.rounds = "20", 1
    if args.scratch is not None:
        args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        print(f"runs in {tmp} ({fs_type(Path(tmp))})")
        for jobs in (int(n) for n in args.jobs.split(",")):
            compare(Path(tmp), jobs, args.workers, args.rounds)
    print(
        f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
