"""The dashboard's first view in Chromium (headless, Debian's chromium + chromedriver through Selenium) on an
analysis of N jobs (default 100,000): the time from navigation to the page showing the analysis's stage
counts, throughput and first job page, and the bytes it fetched to get there; beside the same page on a
10-job analysis (the baseline: the page's own cost).

    python bench/dashboard_first_view.py [--jobs 100000] [--loads 5] [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chromium import missing_reason, start_chromium
from service_api import big_analysis
from service_helpers import running_service

BYTES = (
    "return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))"
    ".reduce((n, e) => n + (e.encodedBodySize || 0), 0)"
)


def first_view(driver, url: str) -> tuple[float, int, str]:
    """Load the page; ms from navigation to the first full view, bytes fetched, the job page's label."""
    driver.get(url)
    deadline = time.monotonic() + 120
    while not (shown := driver.execute_script("return document.body.dataset.firstView")):
        if time.monotonic() > deadline:
            raise SystemExit(
                f"no first view: {driver.execute_script('return document.body.innerText')[:500]}"
            )
        time.sleep(0.01)
    label = driver.execute_script("return document.getElementById('page').textContent")
    return float(shown), int(driver.execute_script(BYTES)), label


def measure(driver, url: str, loads: int) -> tuple[float, float, int, str]:
    """(median ms, worst ms, bytes of the last load, label) over `loads` loads."""
    runs = [first_view(driver, url) for _ in range(loads)]
    times = [r[0] for r in runs]
    return statistics.median(times), max(times), runs[-1][1], runs[-1][2]


def main() -> None:
    if missing_reason() is not None:
        raise SystemExit(missing_reason())
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 2 loads (CI)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.loads = 2000, 2
    root = Path(tempfile.mkdtemp(prefix="gpview"))
    started = time.perf_counter()
    (root / "big").mkdir()
    (root / "small").mkdir()
    big = big_analysis(root / "big", args.jobs, done=args.jobs // 2)
    small = big_analysis(root / "small", 10)
    print(
        f"analyses with {args.jobs} jobs (half done) and 10 planned jobs made in {time.perf_counter() - started:.1f} s"
    )
    driver = None
    try:
        with running_service() as svc:
            svc.start("--http", "127.0.0.1:0")
            info = svc.info()
            with svc.client() as client:
                ids = {n: client.add(p, paused=True)["id"] for n, p in (("big", big), ("small", small))}
            driver = start_chromium(root / "profile")
            base = f"http://{info['http']}/"
            driver.get(f"{base}?token={info['token']}")  # the token becomes a cookie
            print(
                f"{'first view (Chromium)':34} {'median ms':>10} {'worst ms':>9} {'KB fetched':>11}   ({args.loads} loads)"
            )
            first_view(driver, f"{base}?analysis={ids['small']}&interval=60000")  # warm the browser up
            for label, key in (("10 jobs (baseline)", "small"), (f"{args.jobs} jobs", "big")):
                median, worst, size, shown = measure(
                    driver, f"{base}?analysis={ids[key]}&interval=60000", args.loads
                )
                print(f"{label:34} {median:10.1f} {worst:9.1f} {size / 1024:11.1f}   job table: {shown}")
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
