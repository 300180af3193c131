"""The `htcondor` backend against a real one-machine HTCondor pool started here, versus raw binding calls.

    python bench/htcondor_bench.py [--jobs 1000] [--quick] [--file-transfer]

Submission: N jobs through the engine's exactly-once submission (store, one batch file and one schedd
transaction per batch) versus two baselines given the same descriptions and the same N items (their batch
files made beforehand, not timed): one `condor_submit` of a file with `queue ... from (...)` (what the issue names: a user
submitting by hand) and one raw `Schedd.submit` of the bindings (no process, no file: the floor), in rounds
with the three rotating. Jobs are submitted with `requirements = False`,
so they stay idle and running them does not load the machine meanwhile. Refresh: one engine refresh of the N
active jobs (schedd calls counted) versus one raw `Schedd.query` with the same constraint and projection.
Needs root and HTCondor's daemons (tests/htcondor_pool.py; `.ci/htcondor-pool` installs them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_helpers import gamma_touch_analysis
from htcondor_pool import HTCondorPool, missing_reason, running_pool

from gridpipe.service.context import Analysis
from gridpipe.service.planning import plan_units, record_plan
from gridpipe.service.refresh import refresh
from gridpipe.service.submission import submit

VARIANTS = ("bindings", "condor_submit", "engine")


def raw_batches(
    an: Analysis, n: int, rounds: int
) -> tuple[list[tuple[dict[str, str], list[dict[str, str]]]], float]:
    """The same descriptions and items gridpipe gives, for batch files made here (not part of the raw time),
    one per round, and the seconds making those files took (what the file system costs the engine)."""
    from gridpipe.backends.htcondor import HTCondorBackend
    from gridpipe.backends.htcondor_jobs import description

    backend = an.backend
    assert isinstance(backend, HTCondorBackend)
    specs = plan_units(an, an.workflow.stage("produce")).new[:n]
    backend.folders.ensure_script(backend.job_python())
    cut = [n * r // rounds for r in range(rounds + 1)]  # rounds of (nearly) equal size, all n items
    batches, seconds = [], 0.0
    for r in range(rounds):
        chunk = specs[cut[r] : cut[r + 1]]
        started = time.perf_counter()
        batch = backend.folders.new_batch(chunk, {}, backend.settings.file_transfer)
        seconds += time.perf_counter() - started
        desc = description(backend.settings, backend.folders, backend.key, batch.number)
        batches.append((desc, batch.items))
    return batches, seconds


def condor_submit(pool: HTCondorPool, desc: dict[str, str], items: list[dict[str, str]]) -> None:
    """One `condor_submit` of the description with `queue ... from (...)`, as a user would run it."""
    from gridpipe.backends.htcondor_jobs import describe_text

    submit_file = pool.root / "bench.sub"  # the pool's folder: seen at the same path in a chroot
    submit_file.write_text(describe_text(desc, items) + "\n")
    done = subprocess.run(
        pool.client_argv("condor_submit", "-terse", str(submit_file)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **pool.env},
    )
    if done.returncode != 0 or done.stdout.count(".") < 2:
        raise SystemExit(f"condor_submit failed: {done.stdout[-500:]}{done.stderr[-1500:]}")


def bench_submit(
    an: Analysis, pool: HTCondorPool, raw: list[tuple[dict[str, str], list[dict[str, str]]]]
) -> dict[str, list[float]]:
    """Seconds of each round for each variant (bindings, condor_submit, engine), the three rotating."""
    import htcondor2

    stage = an.workflow.stage("produce")
    record_plan(an, plan_units(an, stage))
    names = [job.name for job in an.store.jobs(stage="produce")]
    cut = [sum(len(items) for _, items in raw[:r]) for r in range(len(raw) + 1)]
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r, (desc, items) in enumerate(raw):
        for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
            started = time.perf_counter()
            if variant == "bindings":
                result = htcondor2.Schedd().submit(htcondor2.Submit(desc), itemdata=iter(items))
                assert result.num_procs() == len(items)
            elif variant == "condor_submit":
                condor_submit(pool, desc, items)
            else:
                report = submit(an, names[cut[r] : cut[r + 1]])
                assert len(report.submitted) == len(items), report.failed
            seconds[variant].append(time.perf_counter() - started)
    return seconds


def bench_refresh(an: Analysis, repeat: int) -> tuple[float, float, float, int]:
    """Median seconds of one raw query and one engine refresh of every active job, schedd calls per
    refresh, and the number of active jobs."""
    import htcondor2

    from gridpipe.backends.htcondor_states import PROJECTION

    backend = an.backend
    active = sum(len(ids) for ids in an.store.active_ids().values())
    constraint = f'GridpipeAnalysis == "{backend.key}"'
    raw, eng, calls = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        htcondor2.Schedd().query(constraint, list(PROJECTION))
        raw.append(time.perf_counter() - started)
        before = backend.client.calls
        started = time.perf_counter()
        refresh(an)
        eng.append(time.perf_counter() - started)
        calls.append(backend.client.calls - before)
    return statistics.median(raw), statistics.median(eng), statistics.median(calls), active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    parser.add_argument(
        "--file-transfer", action="store_true", help="jobs with file_transfer: true (batch files in chunks)"
    )
    args = parser.parse_args()
    n, rounds, repeat = (60, 3, 2) if args.quick else (args.jobs, 6, 5)
    reason = missing_reason()
    if reason:
        raise SystemExit(f"htcondor_bench: {reason}")
    with running_pool() as pool:
        # In the pool's folder: condor_submit (in a chroot on Debian 12) checks that each job's folder exists.
        sub = pool.workdir("bench") / "sub"
        section = "    requirements: 'False'\n" + ("    file_transfer: true\n" if args.file_transfer else "")
        an = Analysis.open(gamma_touch_analysis(sub, n, "htcondor", section))
        try:
            batches, folders = raw_batches(an, n, rounds)
            seconds = bench_submit(an, pool, batches)
            load = os.getloadavg()
            raw, eng, calls, active = bench_refresh(an, repeat)
        finally:
            an.close()
    cli, plain, engine = (sum(seconds[v]) for v in ("condor_submit", "bindings", "engine"))
    # This disk's metadata latency swings several-fold from minute to minute: the median of the rounds'
    # ratios (each round's variants ran back to back) is the steadier number.
    per_round = sorted(e / c for e, c in zip(seconds["engine"], seconds["condor_submit"], strict=True))
    print(f"submit {n} jobs (idle: requirements False; {rounds} rounds, the three rotating):")
    print(f"  condor_submit, queue from (baseline)        {cli:7.2f} s")
    print(f"  raw Schedd.submit of the same items         {plain:7.2f} s")
    print(
        f"  engine exactly-once submit (store included) {engine:7.2f} s   ratio {engine / cli:.2f} to condor_submit "
        f"(target <= 1.3), {engine / plain:.2f} to the bindings"
    )
    print(
        f"  ratio to condor_submit per round: {' '.join(f'{r:.2f}' for r in per_round)}, "
        f"median {statistics.median(per_round):.2f}"
    )
    print(
        f"  (the batch files of the {rounds} rounds alone: {folders:7.3f} s: this disk's share of the engine's time)"
    )
    print(f"  load average after the rounds: {' '.join(f'{x:.2f}' for x in load)}")
    print(f"refresh {active} active jobs (median of {repeat}):")
    print(f"  raw Schedd.query, same projection           {raw * 1e3:7.1f} ms")
    print(
        f"  engine refresh                              {eng * 1e3:7.1f} ms   ratio {eng / raw:.2f}, {calls:.0f} schedd call(s)"
    )


if __name__ == "__main__":
    main()
