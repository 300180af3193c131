"""Time LocalStorage put and get of many tiny files against plain `shutil.copyfile` of the same files.

Usage: /work/venv/bin/python bench/storage_small_files.py [--files 1000] [--size 1] [--rounds 3] [--scratch DIR]
The local backend calls `put` once per job output and `get` once per job input, and a run downloads every
output (`get`) after a stage, so for tiny files the per-call Python overhead is what matters. Each phase runs
`--rounds` times on fresh files and LFN folders; the best round (by wall time) is kept. Prints microseconds
of wall, user CPU (Python's work: what this code can change) and system CPU (the kernel's: creating files,
which varies a lot on a busy VM) per file, with ratios to `shutil.copyfile` measured in the same run.
`put move=True` is measured only when the storage's `put` accepts `move`.
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from gridpipe.storage.local import LocalStorage

LFN_DIR = "/vo.bench/user/b/bench/ana/data/DL2/gamma"


def make_sources(folder: Path, files: int, size: int) -> list[Path]:
    """`files` fresh files of `size` bytes each in `folder` (not timed)."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(files):
        path = folder / f"DL2_gamma_tail_run{i:05d}.h5"
        path.write_bytes((i.to_bytes(8, "little") * (size // 8 + 1))[:size])
        paths.append(path)
    return paths


def timed(action: Callable[[], object]) -> tuple[float, float, float]:
    """Wall, user CPU (Python's own work) and system CPU (the kernel's) seconds that `action()` took."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    action()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def copy_all(srcs: list[Path], out: Path) -> None:
    """The baseline: shutil.copyfile of every file into `out`."""
    for path in srcs:
        shutil.copyfile(path, out / path.name)


def put_all(storage: LocalStorage, srcs: list[Path], folder: str, move: bool) -> None:
    """Put every file below the LFN `folder` (with `move=True` only when asked, so old code runs too)."""
    if move:
        for path in srcs:
            storage.put(path, f"{folder}/{path.name}", move=True)
    else:
        for path in srcs:
            storage.put(path, f"{folder}/{path.name}")


def get_all(storage: LocalStorage, names: list[str], folder: str, out: Path) -> None:
    """Get every file of the LFN `folder` into `out`."""
    for name in names:
        storage.get(f"{folder}/{name}", out / name)


def run_round(storage: LocalStorage, scratch: Path, r: int, args: argparse.Namespace, has_move: bool) -> dict:
    """One round of every phase on fresh files; returns (wall, user, system) seconds by phase."""
    srcs = make_sources(scratch / f"src{r}", args.files, args.size)
    names = [p.name for p in srcs]
    (scratch / f"copy{r}").mkdir()
    (scratch / f"got{r}").mkdir()
    times = {"shutil.copyfile": timed(partial(copy_all, srcs, scratch / f"copy{r}"))}
    times["put"] = timed(partial(put_all, storage, srcs, f"{LFN_DIR}/r{r}", False))
    times["get"] = timed(partial(get_all, storage, names, f"{LFN_DIR}/r{r}", scratch / f"got{r}"))
    assert sorted(os.listdir(scratch / f"got{r}")) == sorted(names)
    if has_move:
        times["put move=True"] = timed(partial(put_all, storage, srcs, f"{LFN_DIR}/m{r}", True))
        assert not any(p.exists() for p in srcs)
        assert len(storage.list(f"{LFN_DIR}/m{r}")) == args.files
    return times


def main() -> None:
    """Run the benchmark and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1, help="bytes per file")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=None, help="parent of the scratch folder")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds = 100, 1
    has_move = "move" in inspect.signature(LocalStorage.put).parameters
    scratch = Path(tempfile.mkdtemp(prefix="gridpipe-small-files-bench-", dir=args.scratch))
    phases: dict[str, list[tuple[float, float, float]]] = {}
    try:
        storage = LocalStorage(scratch / "se")
        for r in range(args.rounds):
            for name, result in run_round(storage, scratch, r, args, has_move).items():
                phases.setdefault(name, []).append(result)
        storage.close()
    finally:
        shutil.rmtree(scratch)
    base = min(phases["shutil.copyfile"])
    print(f"{args.files} files x {args.size} byte(s), best of {args.rounds} rounds; move: {has_move}")
    print("us per file:      wall    user  system   ratio to copyfile: wall  user  system")
    per = 1e6 / args.files
    for name, results in phases.items():
        wall, user, system = min(results)
        print(
            f"{name:<15} {wall * per:7.1f} {user * per:7.1f} {system * per:7.1f}"
            f"   {_ratio(wall, base[0], 23)} {_ratio(user, base[1], 5)} {_ratio(system, base[2], 7)}"
        )


def _ratio(value: float, base: float, width: int) -> str:
    """value / base, or '-' when the baseline is below the clock's resolution (tiny runs)."""
    return f"{value / base:{width}.2f}" if base > 0 else f"{'-':>{width}}"


if __name__ == "__main__":
    main()
