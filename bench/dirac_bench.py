"""The `dirac` backend against a loopback DiracX server, versus raw diracx-client calls, in one run.

    /work/venv/bin/python bench/dirac_bench.py [--jobs 2000]

Submission: the same N JDLs (rendered by the backend, input sandbox uploaded once) as raw
`submit_jdl_jobs` calls of 20, and through gridpipe: `backend.submit` per 20 (as the engine calls it),
`backend.submit` of a whole block (calls of 20, 1 or `submit_parallel` in flight) and the engine's
exactly-once submission (store bookkeeping included); in 5 rounds, variants in rotating order, so
load and database growth hit every variant alike.
Status: N active jobs refreshed by one raw search (one page, per_page=10000), by `backend.poll` and by
the engine's `refresh` (store updates included), interleaved; HTTP calls counted in the server's log.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import yaml
from diracx_server import DiracxServer, running_server, search_page
from engine_helpers import make_analysis

from gridpipe.backends.dirac import DiracBackend
from gridpipe.backends.dirac_settings import DiracSettings
from gridpipe.service.context import Analysis
from gridpipe.service.planning import plan_units, record_plan
from gridpipe.service.refresh import refresh
from gridpipe.service.submission import submit

WORKFLOW = """version: 1
tree:
  directories: [data/simtel, data/OUT]
  files: [{path: configs/grid.yaml, template: configs/grid.yaml.j2}]
inputs: {gamma_in: data/simtel/gamma_in.list}
stages:
  - name: produce
    output_type: TRAINING
    units: [gamma]
    input_list: "{particle}_in"
    data_type: OUT
    job_name: "{analysis}_OUT_{particle}_{token}"
    output: "OUT_{particle}_{mode}_{token}.h5"
    sandbox: [configs/grid.yaml]
    command: ["{python} -m gridpipe.payloads.demo training --config-file grid.yaml --outfile {output} --infile-list {inputs}"]
"""


def calls(server: DiracxServer) -> int:
    """HTTP requests the server has logged so far."""
    return server.server_log.read_text(errors="replace").count(' HTTP/1.1" ')


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def make(tmp: Path, server: DiracxServer, n: int) -> Path:
    """An analysis on the dirac backend (user token) with n one-file jobs."""
    path = make_analysis(tmp, {"gamma": n}, name="bench", n_file_per_job=1, workflow=_workflow(tmp))
    grid_file = path / "configs" / "grid.yaml"
    data = yaml.safe_load(grid_file.read_text())
    data["backend"]["name"] = "dirac"
    data["backend"].setdefault("dirac", {}).update(
        url=server.url, credentials_path=str(server.user_credentials)
    )
    grid_file.write_text(yaml.safe_dump(data))
    return path


def _workflow(tmp: Path) -> Path:
    path = tmp / "workflow.yaml"
    path.write_text(WORKFLOW)
    return path


def bench_submit(server: DiracxServer, an: Analysis, n: int, rounds: int = 5) -> dict[str, float]:
    """Seconds to submit n jobs per variant, in rounds of n/rounds jobs, variants in rotating order."""
    stage = an.workflow.stage("produce")
    specs = plan_units(an, stage).new
    backend = an.backend
    assert isinstance(backend, DiracBackend)
    pfn = backend.sandboxes.pfn(specs[0].sandbox)  # uploaded once; every variant reuses it
    jdls = [backend.render_jdl(spec, [pfn]) for spec in specs]
    record_plan(an, plan_units(an, stage))
    names = [job.name for job in an.store.jobs(stage="produce")]
    parallel = backend.settings
    sequential = replace(parallel, submit_parallel=1)

    def all_at_once(block: slice, settings: DiracSettings) -> None:
        backend.settings = settings
        backend.submit(specs[block])
        backend.settings = parallel

    def engine(block: slice) -> None:
        report = submit(an, names[block])
        assert len(report.submitted) == block.stop - block.start, report.failed

    out: dict[str, float] = {}
    with server.client(server.user_credentials) as client:
        client.jobs.search(search=[], parameters=["JobID"], per_page=1)  # open the connection
        variants = {
            "raw": lambda b: [
                client.jobs.submit_jdl_jobs(jdls[i : i + 20]) for i in range(b.start, b.stop, 20)
            ],
            "backend_by_20": lambda b: [
                backend.submit(specs[i : i + 20]) for i in range(b.start, b.stop, 20)
            ],
            "backend_all_p1": lambda b: all_at_once(b, sequential),
            f"backend_all_p{parallel.submit_parallel}": lambda b: all_at_once(b, parallel),
            "engine": engine,
        }
        size = n // rounds
        for r in range(rounds):
            block = slice(r * size, (r + 1) * size)
            order = list(variants)[r % len(variants) :] + list(variants)[: r % len(variants)]
            for name in order:
                out[name] = (
                    out.get(name, 0.0) + timed(lambda name=name, block=block: variants[name](block))[0]
                )
    return out


def bench_status(server: DiracxServer, an: Analysis, repeat: int = 7) -> dict[str, tuple[float, float]]:
    """Median seconds and HTTP calls per refresh of all active jobs: raw search, backend.poll, engine."""
    ids = [backend_id for ids in an.store.active_ids().values() for backend_id in ids]
    backend = an.backend
    by_id = [{"parameter": "JobID", "operator": "in", "values": [int(i) for i in ids]}]
    columns = ["JobID", "Status", "MinorStatus", "Site"]
    out: dict[str, tuple[float, float]] = {}
    with server.client(server.user_credentials) as client:
        search_page(client, by_id, columns, page=1, per_page=10_000)  # warm the connection, as poll's is
        variants = {
            "raw": lambda: search_page(client, by_id, columns, page=1, per_page=10_000),
            "poll": lambda: backend.poll(ids),
            "refresh": lambda: refresh(an),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        counts: dict[str, list[int]] = {name: [] for name in variants}
        for _ in range(repeat):  # interleaved, so load changes hit every variant alike
            for name, fn in variants.items():
                before = calls(server)
                times[name].append(timed(fn)[0])
                time.sleep(0.05)  # let the access log line land
                counts[name].append(calls(server) - before)
        for name in variants:
            out[name] = (statistics.median(times[name]), statistics.median(counts[name]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    args = parser.parse_args()
    n = 40 if args.quick else args.jobs
    repeat = 2 if args.quick else 7
    with (
        tempfile.TemporaryDirectory(prefix="dirac-bench-") as tmp,
        running_server(Path(tmp) / "srv") as server,
    ):
        an = Analysis.open(make(Path(tmp), server, n))
        try:
            sub = bench_submit(server, an, n)
            status = bench_status(server, an, repeat)
        finally:
            an.backend.close()  # type: ignore[attr-defined]
            an.close()
    print(f"submit {n} jobs (same JDLs, calls of 20; 5 rounds of {n // 5}, variants in rotating order):")
    print(f"  {'raw submit_jdl_jobs, one call after the other':<47} {sub['raw']:6.2f} s")
    labels = {
        "backend_by_20": "backend.submit per 20 (as the engine calls it)",
        "backend_all_p1": "backend.submit of all, 1 call in flight",
        "engine": "engine exactly-once submit (store included)",
    }
    for key in sub:
        if key.startswith("backend_all_p") and key not in labels:
            labels[key] = f"backend.submit of all, {key.removeprefix('backend_all_p')} calls in flight"
    for key, label in labels.items():
        print(f"  {label:<47} {sub[key]:6.2f} s   ratio {sub[key] / sub['raw']:.2f}")
    print("  (target for gridpipe's backend: ratio <= 1.15)")
    raw_t, raw_calls = status["raw"]
    print(f"refresh {n} active jobs (median of {repeat}, interleaved):")
    for key, label in (
        ("raw", "raw search, 1 page    "),
        ("poll", "backend.poll          "),
        ("refresh", "engine refresh (store)"),
    ):
        t, c = status[key]
        print(
            f"  {label}  {t * 1e3:7.0f} ms  {c:.0f} HTTP call(s)   ratio {t / raw_t:.2f} time, {c / raw_calls:.2f} calls"
        )


if __name__ == "__main__":
    main()
