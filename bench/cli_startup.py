"""Start-up time of the `gridpipe` command against `python -c "import typer"`, measured in the same run.

Usage: python bench/cli_startup.py [--runs N]

Prints the median wall time of each command over N runs (interleaved, after one warm-up run each)
and the ratio gridpipe / typer. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _installed import compile_gridpipe

TARGET_RATIO = 1.5


def _gridpipe_command() -> list[str]:
    """The console script next to this interpreter, else `python -m gridpipe`."""
    script = Path(sys.executable).with_name("gridpipe")
    if script.is_file():
        return [str(script)]
    found = shutil.which("gridpipe")
    return [found] if found else [sys.executable, "-m", "gridpipe"]


def _time_once(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed


def measure(commands: dict[str, list[str]], runs: int, cwd: str) -> dict[str, list[float]]:
    """Run every command `runs` times, interleaved so that machine load hits all alike."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for command in commands.values():
        _time_once(command, cwd)  # warm the file cache and the bytecode
    for _ in range(runs):
        for label, command in commands.items():
            times[label].append(_time_once(command, cwd))
    return times


def main() -> None:
    """Measure and print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs = 2
    print(compile_gridpipe())
    gridpipe = _gridpipe_command()
    commands = {
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "gridpipe --help": [*gridpipe, "--help"],
        "gridpipe --version": [*gridpipe, "--version"],
    }
    env_note = "TYPER_USE_RICH=" + os.environ.get("TYPER_USE_RICH", "(unset)")
    with tempfile.TemporaryDirectory() as cwd:
        times = measure(commands, args.runs, cwd)
    medians = {label: statistics.median(values) for label, values in times.items()}
    baseline = medians["python -c 'import typer'"]
    print(f"runs per command: {args.runs}  ({env_note}; python {sys.version.split()[0]})")
    for label, median in medians.items():
        spread = f"min {min(times[label]) * 1000:.0f} / max {max(times[label]) * 1000:.0f} ms"
        print(f"  {label:<28} median {median * 1000:7.1f} ms   ({spread})")
    ratio = medians["gridpipe --help"] / baseline
    verdict = "OK" if ratio <= TARGET_RATIO else "ABOVE TARGET"
    print(f"ratio gridpipe --help / import typer: {ratio:.2f}  (target <= {TARGET_RATIO}: {verdict})")


if __name__ == "__main__":
    main()
