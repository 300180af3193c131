"""Benchmark of `gridpipe.merge.merge_files` against `cat` of the same bytes and row-append merges.

Run by hand (not part of the test suite):

    /work/venv/bin/python bench/merge_bench.py --total-mb 200
    /work/venv/bin/python bench/merge_bench.py --total-mb 1000 --methods cat,gridpipe,vds

It writes protopipe-like TRAINING files (one table per camera type, ~30 float columns, ctapipe's
default filters blosc:zstd level 5 + fletcher32, 2-5 MB each) into a scratch folder, then runs each
method in its own child process and prints seconds, MB/s of input, the ratio to `cat`, the CPU
seconds (user + system, with the tools it starts; medians over the rounds: on a shared machine they
vary less than the seconds) and their ratio to `cat`'s, the output size and the peak RSS of the child and the tools it starts (VmHWM, and ru_maxrss of its children;
ru_maxrss of the child itself would carry the parent's peak across exec) with and without the import
baseline. `--compare-with DIR` also runs gridpipe from another source tree (e.g. `git archive` of an
older commit) in the same alternating rounds, as "gridpipe-before". When ctapipe is installed
(the ctapipe extra), ctapipe's own `ctapipe-merge` runs on the same files too (it may refuse them: they
are protopipe-like tables, not a ctapipe data-model file; its one-line reason is printed); else it is
said to be skipped. Input files are in
the page cache for every method (they were just written or read); outputs are fsynced by every
method. The scratch folder is deleted at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tables

FILTERS = tables.Filters(complevel=5, complib="blosc:zstd", shuffle=True, fletcher32=True)
CAMERAS = {"LSTCam": 0.35, "NectarCam": 0.65}
CTAPIPE_SHOWERS = 3000  # thrown per file: ~600 events, ~1,500 telescope images, ~7 MB
METHODS = [
    "cat",
    "gridpipe",
    "gridpipe-before",
    "gridpipe-keep-order",
    "vds",
    "naive",
    "ctapipe-style",
    "ctapipe-merge",
]
DEFAULT_METHODS = "cat,gridpipe,vds,naive,ctapipe-style" + (
    ",ctapipe-merge" if shutil.which("ctapipe-merge") else ""
)


def image_dtype() -> np.dtype:
    floats = [
        "hillas_intensity", "hillas_x", "hillas_y", "hillas_r", "hillas_phi", "hillas_length",
        "hillas_width", "hillas_psi", "hillas_skewness", "hillas_kurtosis", "leakage_pixels_width_1",
        "leakage_intensity_width_1", "concentration_cog", "concentration_core", "timing_slope",
        "timing_intercept", "morphology_n_islands", "impact_dist", "h_max", "az", "alt", "core_x",
        "core_y", "reco_energy_lst", "sum_signal_evt", "max_signal_cam", "miss", "disp", "width_reco",
        "length_reco",
    ]  # fmt: skip
    fields = [("obs_id", "i4"), ("event_id", "i8"), ("tel_id", "i2"), ("n_pixel", "i2")]
    return np.dtype(fields + [(name, "f4") for name in floats] + [("true_energy", "f8")])


def make_rows(rng: np.random.Generator, n: int, obs_id: int, first_event: int) -> np.ndarray:
    """Rows whose columns compress like real image parameters: some smooth, some noisy, some sparse."""
    data = np.zeros(n, dtype=image_dtype())
    data["obs_id"] = obs_id
    data["event_id"] = first_event + np.sort(rng.integers(0, 4 * n, n))
    data["tel_id"] = rng.integers(1, 20, n)
    data["n_pixel"] = rng.integers(5, 400, n)
    for i, name in enumerate(data.dtype.names[4:-1]):
        values = rng.lognormal(3.0, 1.0, n) if i % 3 == 0 else rng.normal(0.0, 1.0, n)
        if i % 3 == 1:
            values = np.round(values, 3)  # stored with limited precision
        if i % 5 == 4:
            values[rng.random(n) < 0.8] = 0.0  # mostly empty (leakage-like)
        data[name] = values
    data["true_energy"] = rng.lognormal(-1.0, 1.2, n)
    return data


def generate(folder: Path, total_mb: float, seed: int = 1) -> list[Path]:
    """Write compressed TRAINING-like files totalling about `total_mb` MB into `folder` (reused if there)."""
    manifest = folder / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("total_mb") == total_mb:
        return [folder / name for name in json.loads(manifest.read_text())["files"]]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    files: list[Path] = []
    bytes_per_row, written, start = 120.0, 0, time.perf_counter()
    while written < total_mb * 1e6:
        path = folder / f"TRAINING_energy_gamma_tail_run{len(files) + 1:05d}.h5"
        rows = int(rng.uniform(2e6, 5e6) / bytes_per_row)
        with tables.open_file(str(path), "w") as h5:
            for camera, share in CAMERAS.items():
                table = h5.create_table("/", camera, image_dtype(), filters=FILTERS)
                table.append(make_rows(rng, int(rows * share), len(files), 0))
        size = path.stat().st_size
        bytes_per_row = size / rows
        written += size
        files.append(path)
    manifest.write_text(json.dumps({"total_mb": total_mb, "files": [p.name for p in files]}))
    print(f"generated {len(files)} files, {written / 1e6:.0f} MB in {time.perf_counter() - start:.0f} s")
    return files


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def merge_cat(files: list[Path], out: Path) -> None:
    with out.open("wb") as fh:
        subprocess.run(["cat", *map(str, files)], stdout=fh, check=True)


def merge_gridpipe(files: list[Path], out: Path, **kwargs: object) -> None:
    from gridpipe.merge import merge_files

    report = merge_files(files, out, **kwargs)
    print(f"  [{report.summary()}; {report.chunks_copied} chunks raw, {report.rows_recoded} rows recoded]")


def merge_naive(files: list[Path], out: Path) -> None:
    """Read each table whole and append its rows (what a hand-written merge script does)."""
    with tables.open_file(str(out), "w") as dst:
        for path in files:
            with tables.open_file(str(path)) as src:
                for table in src.walk_nodes("/", "Table"):
                    if table._v_pathname not in dst:
                        dst.create_table("/", table.name, table.description, filters=table.filters)
                    dst.get_node(table._v_pathname).append(table.read())


def merge_ctapipe_style(files: list[Path], out: Path) -> None:
    """Like ctapipe's HDF5Merger: copy the first file's nodes, then append `table[:].astype(dtype)`."""
    with tables.open_file(str(out), "w") as dst:
        with tables.open_file(str(files[0])) as src:
            for table in src.walk_nodes("/", "Table"):
                src.copy_node(table, newparent=dst.root, filters=table.filters)
        for path in files[1:]:
            with tables.open_file(str(path)) as src:
                for table in src.walk_nodes("/", "Table"):
                    target = dst.get_node(table._v_pathname)
                    target.append(table[:].astype(target.dtype))


def merge_ctapipe(files: list[Path], out: Path) -> None:
    """ctapipe's own merge tool (ctapipe-merge), as a user runs it; exits with its last line if it fails."""
    proc = subprocess.run(
        ["ctapipe-merge", *map(str, files), f"--output={out}", "--overwrite"],
        capture_output=True,
        text=True,
        cwd=out.parent,  # its provenance log goes beside the output, not into the caller's folder
    )
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()] or [f"exit {proc.returncode}"]
        sys.exit(lines[-1].strip())


def generate_ctapipe(folder: Path, count: int) -> list[Path]:
    """`count` DL1 files in ctapipe's own data model (gridpipe's synthetic events; needs ctapipe)."""
    import logging

    from gridpipe.payloads.ctapipe.synthetic import write_synthetic_file

    manifest = folder / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("ctapipe_files") == count:
        return [folder / name for name in json.loads(manifest.read_text())["files"]]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    logging.getLogger("ctapipe").setLevel(logging.ERROR)
    start = time.perf_counter()
    files = [folder / f"gamma_obs{obs:04d}.dl1.h5" for obs in range(1, count + 1)]
    for obs, path in enumerate(files, start=1):
        write_synthetic_file("gamma", obs, CTAPIPE_SHOWERS, path)
    manifest.write_text(json.dumps({"ctapipe_files": count, "files": [p.name for p in files]}))
    print(f"generated {count} ctapipe DL1 files in {time.perf_counter() - start:.0f} s")
    return files


def peak_rss_kb() -> int:
    """Peak RSS of this process since its exec (VmHWM) or of its largest finished child, in KiB."""
    status = Path("/proc/self/status")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if status.exists():
        own = next(
            int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM")
        )
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (cat runs as a child)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(method: str, folder: Path, out: Path) -> None:
    """Run one method in this (fresh) process and print a JSON line with time and peak RSS."""
    names = json.loads((folder / "manifest.json").read_text())["files"]
    files = [folder / name for name in names]
    import gridpipe.merge  # noqa: F401  (imports count in the baseline, not in the merge)

    rss_before = peak_rss_kb()
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    if method == "cat":
        merge_cat(files, out)
    elif method in ("gridpipe", "gridpipe-before"):
        merge_gridpipe(files, out)
    elif method == "gridpipe-keep-order":
        merge_gridpipe(files, out, keep_order=True)
    elif method == "vds":
        merge_gridpipe(files, out, mode="vds")
    elif method == "naive":
        merge_naive(files, out)
    elif method == "ctapipe-merge":
        merge_ctapipe(files, out)
    else:
        merge_ctapipe_style(files, out)
    if method not in ("gridpipe", "gridpipe-before", "gridpipe-keep-order", "vds"):  # merge_files fsyncs
        fsync(out)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    rss = peak_rss_kb()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_kb": rss, "rss_before_kb": rss_before}))


def rows_in(path: Path) -> int:
    """Rows of the event tables: root-level tables (protopipe-like) or /dl1 and /simulation/event (ctapipe)."""
    with tables.open_file(str(path)) as h5:
        return sum(
            t.nrows
            for t in h5.walk_nodes("/", "Table")
            if t._v_parent is h5.root or t._v_pathname.startswith(("/dl1/", "/simulation/event/"))
        )


def run(method: str, folder: Path, before: Path | None = None) -> dict[str, float] | None:
    """One method's numbers, or None (said why) when ctapipe-merge refused the files."""
    out = folder / f"merged_{method}.h5"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", method, "--scratch", str(folder), "--out", str(out)]
    env = dict(os.environ)
    if method == "gridpipe-before" and before is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(before), env.get("PYTHONPATH")]))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=method != "ctapipe-merge", env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"ctapipe-merge refused the files: {last[:300]}")
        out.unlink(missing_ok=True)
        return None
    lines = proc.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    result = json.loads(lines[-1]) | {"out_mb": out.stat().st_size / 1e6}
    if method != "cat":
        result["rows"] = rows_in(out)
    out.unlink()
    return result


def median_of(runs: list[dict[str, float]], key: str) -> float:
    """The median of one number over the rounds (0 without rounds)."""
    values = sorted(r[key] for r in runs)
    return values[len(values) // 2] if values else 0.0


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run of median time (its RSS and size with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=float, default=200.0, help="size of the generated input set")
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default under /tmp)")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma list out of {','.join(METHODS)}")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is shown")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    parser.add_argument(
        "--ctapipe-files",
        type=int,
        default=0,
        help="merge N ctapipe-format DL1 files (synthetic, made with ctapipe) instead of protopipe-like ones",
    )
    parser.add_argument(
        "--compare-with", type=Path, help="another gridpipe source tree, run as method gridpipe-before"
    )
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.total_mb, args.rounds = 2.0, 1
        args.scratch = args.scratch or Path(tempfile.mkdtemp(prefix="gridpipe-merge-bench-quick-"))
    kind = f"ctapipe-{args.ctapipe_files}files" if args.ctapipe_files else f"{int(args.total_mb)}mb"
    folder = args.scratch or Path(f"/tmp/gridpipe-merge-bench-{kind}")
    if args.child:
        child(args.child, folder, args.out)
        return
    files = (
        generate_ctapipe(folder, args.ctapipe_files)
        if args.ctapipe_files
        else generate(folder, args.total_mb)
    )
    total_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} input files, {total_mb:.1f} MB, {sum(rows_in(p) for p in files)} rows")
    methods = args.methods.split(",")
    if args.compare_with and "gridpipe-before" not in methods:
        methods.insert(
            methods.index("gridpipe") if "gridpipe" in methods else len(methods), "gridpipe-before"
        )
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for number in range(args.rounds):  # alternating rounds: other load hits every method alike
        if args.rounds > 1:
            print(f"round {number + 1}/{args.rounds}")
        for method in list(methods):
            if (result := run(method, folder, args.compare_with)) is not None:
                runs[method].append(result)
            else:  # refused: said once, not asked again
                methods.remove(method)
    results = {m: median_run(r) for m, r in runs.items() if r}
    if not shutil.which("ctapipe-merge"):
        print("ctapipe-merge: skipped (ctapipe is not installed: pip install 'gridpipe[ctapipe]')")
    base = results.get("cat", {}).get("seconds")
    cpu_base = median_of(runs.get("cat", []), "cpu")
    print(
        f"\n{'method':<22}{'seconds':>9}{'MB/s':>9}{'x cat':>8}{'CPU s':>8}{'x cat':>8}{'out MB':>9}"
        f"{'peak RSS MB':>13}{'- imports':>11}"
    )
    for method, r in results.items():
        ratio = f"{r['seconds'] / base:8.1f}" if base else f"{'-':>8}"
        cpu = median_of(runs[method], "cpu")
        cpu_ratio = f"{cpu / cpu_base:8.1f}" if cpu_base else f"{'-':>8}"
        print(
            f"{method:<22}{r['seconds']:9.2f}{total_mb / r['seconds']:9.0f}{ratio}{cpu:8.2f}{cpu_ratio}"
            f"{r['out_mb']:9.1f}{r['rss_kb'] / 1024:13.0f}{(r['rss_kb'] - r['rss_before_kb']) / 1024:11.0f}"
        )
    rows = {int(r["rows"]) for r in results.values() if "rows" in r}
    print(f"row totals of the merged files: {sorted(rows)} (must be one value)")
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
