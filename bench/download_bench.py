"""Time `cp -r` of a local storage element against a verified `sync(..., jobs=N)` of the same files.

Usage: /work/venv/bin/python bench/download_bench.py [--files 1000] [--size 200000] [--jobs 8 ...] [--scratch DIR]
Prints wall and CPU seconds and ratios against `cp -r` measured in the same run (CPU seconds are the steadier
number on a shared machine); the scratch data is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from gridpipe.storage.local import LocalStorage
from gridpipe.storage.sync import sync

LFN_DIR = "/vo.bench/user/b/bench/ana/data/DL2/gamma"


def fill(storage: LocalStorage, scratch: Path, files: int, size: int) -> None:
    """Put `files` files of `size` random bytes into `storage`."""
    src = scratch / "src.bin"
    for i in range(files):
        src.write_bytes(os.urandom(size))
        storage.put(src, f"{LFN_DIR}/DL2_gamma_tail_run{i:05d}.h5")
    src.unlink()


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process, its threads and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action) -> tuple[float, float, object]:
    """Wall seconds and CPU seconds `action()` took (dirty pages flushed first), and its result."""
    os.sync()
    start, cpu = time.perf_counter(), cpu_seconds()
    result = action()
    return time.perf_counter() - start, cpu_seconds() - cpu, result


def main() -> None:
    """Run the benchmark and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=200_000, help="bytes per file")
    parser.add_argument("--jobs", type=int, action="append", help="parallel gets (repeatable; default 8)")
    parser.add_argument("--scratch", type=Path, default=None, help="parent of the scratch folder")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    if args.quick:
        args.files, args.size = 50, 10_000
    scratch = Path(tempfile.mkdtemp(prefix="gridpipe-download-bench-", dir=args.scratch))
    try:
        storage = LocalStorage(scratch / "se")
        put_s, _, _ = timed(lambda: fill(storage, scratch, args.files, args.size))
        total_mb = args.files * args.size / 1e6
        print(f"{args.files} files x {args.size} bytes ({total_mb:.0f} MB); put took {put_s:.2f} s")
        cp = ["cp", "-r", str(storage.root), str(scratch / "cp")]
        cp_s, cp_cpu, _ = timed(lambda: subprocess.run(cp, check=True))
        print("                            wall s      MB/s   CPU s  ratio to cp -r (wall, CPU)")
        print(f"cp -r                     : {cp_s:7.3f}  {total_mb / cp_s:8.1f} {cp_cpu:7.3f}")
        for jobs in args.jobs or [8]:
            dest = scratch / f"sync{jobs}"
            sync_s, sync_cpu, report = timed(partial(sync, storage, LFN_DIR, dest, jobs=jobs))
            assert report.complete and len(report.download.downloaded) == args.files, report.download.failures
            again_s, again_cpu, again = timed(partial(sync, storage, LFN_DIR, dest, jobs=jobs))
            assert again.download.attempts == 0 and len(again.plan.ok) == args.files
            print(
                f"sync jobs={jobs:<2} (verified)   : {sync_s:7.3f}  {total_mb / sync_s:8.1f} {sync_cpu:7.3f}"
                f"  {sync_s / cp_s:5.2f}  {sync_cpu / cp_cpu:5.2f}"
            )
            print(
                f"sync jobs={jobs:<2} again (no-op): {again_s:7.3f}  {total_mb / again_s:8.1f} {again_cpu:7.3f}"
            )
            shutil.rmtree(dest)
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
