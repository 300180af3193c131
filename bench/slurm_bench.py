"""The `slurm` backend against a real one-node Slurm cluster started here, versus plain client calls, in one run.

    python bench/slurm_bench.py [--jobs 1000] [--e2e 1000] [--quick] [--accounting]

Submission: N jobs through the engine's exactly-once submission (store, job files, one sbatch each) versus a
plain loop of `sbatch --parsable` on the same batch scripts with the same options, in rounds with the two
alternating; jobs are submitted held (`--hold`), so running them does not load the machine meanwhile.
Refresh: one engine refresh of the N active jobs (Slurm client calls counted) versus one raw `squeue` of
the same ids. End to end (--e2e M): M no-op jobs through `gridpipe run` versus the same M batch scripts
submitted by a plain loop and waited for with squeue. Needs root and Debian's slurm-wlm + munge.
With --accounting the cluster has slurmdbd + MariaDB and MinJobAge=2 (ended jobs leave squeue within about
10 s), and one more figure is measured: a refresh of the N jobs after they were cancelled and left squeue
(one squeue plus one sacct) versus one raw sacct of the same ids.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engine_helpers import gamma_touch_analysis
from slurm_accounting import missing_reason as accounting_missing
from slurm_cluster import missing_reason, running_cluster

from gridpipe.backends.slurm import SlurmBackend
from gridpipe.backends.slurm_states import SQUEUE_FORMAT
from gridpipe.service.context import Analysis
from gridpipe.service.planning import plan_units, record_plan
from gridpipe.service.refresh import refresh
from gridpipe.service.submission import submit

ACTIVE = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")
SACCT = ["sacct", "-n", "-P", "-X", "--starttime=now-30days", "-o", "JobIDRaw,State"]


def sbatch_loop(scripts: list[Path], extra: list[str]) -> list[str]:
    """The baseline: one plain `sbatch --parsable` per script, the same options gridpipe gives."""
    ids = []
    for i, script in enumerate(scripts):
        folder = script.parent
        argv = [
            "sbatch", "--parsable", f"--job-name=plain-{i}", f"--comment=plain:{i}", "--no-requeue",
            f"--output={folder}/slurm-%j.out", f"--error={folder}/slurm-%j.err", f"--chdir={folder}",
            "--cpus-per-task=1", *extra, str(script),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        ids.append(done.stdout.strip().split(";")[0])
    return ids


def plain_scripts(an: Analysis, tmp: Path, n: int) -> list[Path]:
    """Batch scripts like gridpipe's (the job worker on a job file), for the baseline loop."""
    backend = an.backend
    assert isinstance(backend, SlurmBackend)
    specs = plan_units(an, an.workflow.stage("produce")).new[:n]
    folders = [backend.folders.new_attempt(spec, backend.job_python(), {}) for spec in specs]
    return [f.script for f in folders]


def bench_submit(an: Analysis, scripts: list[Path], rounds: int) -> tuple[float, float]:
    """Seconds to submit all jobs: (plain loop, engine), in rounds, the two alternating."""
    stage = an.workflow.stage("produce")
    record_plan(an, plan_units(an, stage))
    names = [job.name for job in an.store.jobs(stage="produce")]
    assert len(names) == len(scripts)
    size = len(names) // rounds
    plain = engine = 0.0
    for r in range(rounds):
        block = slice(r * size, (r + 1) * size)
        for variant in ("plain", "engine") if r % 2 == 0 else ("engine", "plain"):
            started = time.perf_counter()
            if variant == "plain":
                sbatch_loop(scripts[block], ["--hold"])
                plain += time.perf_counter() - started
            else:
                report = submit(an, names[block])
                assert len(report.submitted) == size, report.failed
                engine += time.perf_counter() - started
    return plain, engine


def bench_refresh(an: Analysis, repeat: int) -> tuple[float, float, float]:
    """Median seconds of one raw squeue and one engine refresh of every active job, and client calls per refresh."""
    backend = an.backend
    assert isinstance(backend, SlurmBackend)
    ids = [i for ids in an.store.active_ids().values() for i in ids]
    raw, eng, calls = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT, "-j", ",".join(ids)],
            capture_output=True,
            check=True,
        )
        raw.append(time.perf_counter() - started)
        before = backend.client.calls
        started = time.perf_counter()
        refresh(an)
        eng.append(time.perf_counter() - started)
        calls.append(backend.client.calls - before)
    return statistics.median(raw), statistics.median(eng), statistics.median(calls)


def bench_gone(an: Analysis, cluster: object, repeat: int) -> tuple[float, float, float]:
    """Cancel the active jobs, wait until they left squeue and sacct has them all, then: median seconds of
    one raw sacct of their ids and of one engine poll of them, and Slurm client calls per poll."""
    backend = an.backend
    assert isinstance(backend, SlurmBackend)
    ids = [i for ids in an.store.active_ids().values() for i in ids]
    backend.cancel(ids)
    deadline = time.monotonic() + 600
    while True:
        queued = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        acct = subprocess.run([*SACCT, "-j", ",".join(ids)], capture_output=True, text=True).stdout
        ended = [line for line in acct.splitlines() if line.split("|")[1].startswith("CANCELLED")]
        if not set(queued) & set(ids) and len(ended) == len(ids):
            break
        if time.monotonic() > deadline:
            raise SystemExit("cancelled jobs did not leave squeue for sacct within 600 s")
        time.sleep(1)
    raw, eng, calls = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*SACCT, "-j", ",".join(ids)], capture_output=True, check=True)
        raw.append(time.perf_counter() - started)
        before = backend.client.calls
        started = time.perf_counter()
        polled = backend.poll(ids)
        eng.append(time.perf_counter() - started)
        calls.append(backend.client.calls - before)
        assert len(polled) == len(ids) and all(s.reason.startswith("Slurm: CANCELLED") for s in polled)
    return statistics.median(raw), statistics.median(eng), statistics.median(calls)


def wait_ended(ids: list[str], timeout: float) -> None:
    """Until no job is active: squeue for those it still shows, sacct for those that left it (accounting)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(ids)], capture_output=True, text=True
        ).stdout
        states = dict(line.split("|", 1) for line in out.splitlines())
        gone = [i for i in ids if i not in states]
        if gone:
            acct = subprocess.run([*SACCT, "-j", ",".join(gone)], capture_output=True, text=True).stdout
            states.update(line.split("|", 1) for line in acct.splitlines())
        if len(states) >= len(ids) and not any(states.get(i, "PENDING") in ACTIVE for i in ids):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs did not end within {timeout} s")
        time.sleep(0.5)


def bench_e2e(tmp: Path, m: int) -> tuple[float, float]:
    """Seconds for m no-op jobs: plain sbatch loop + squeue waiting, and `gridpipe run`."""
    base = Analysis.open(gamma_touch_analysis(tmp / "plain", m, "slurm"))
    scripts = plain_scripts(base, tmp, m)
    base.close()
    started = time.perf_counter()
    wait_ended(sbatch_loop(scripts, []), timeout=3600)
    plain = time.perf_counter() - started
    path = gamma_touch_analysis(tmp / "engine", m, "slurm")
    started = time.perf_counter()
    run = [sys.executable, "-m", "gridpipe", "run", "-a", str(path), "--poll-interval", "0.5"]
    done = subprocess.run(run, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
    return plain, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--e2e", type=int, default=1000, help="jobs of the end-to-end comparison (0: skip)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for CI (it runs; no timing targets)"
    )
    parser.add_argument(
        "--accounting", action="store_true", help="a cluster with slurmdbd + MariaDB (sacct answers)"
    )
    args = parser.parse_args()
    n, m, rounds, repeat = (40, 10, 2, 2) if args.quick else (args.jobs, args.e2e, 4, 5)
    reason = missing_reason() or (accounting_missing() if args.accounting else None)
    if reason:
        raise SystemExit(f"slurm_bench: {reason}")
    age = 2 if args.accounting else 300
    gone = None
    with (
        tempfile.TemporaryDirectory(prefix="slurm-bench-") as tmp,
        running_cluster(accounting=args.accounting, min_job_age=age) as cluster,
    ):
        import os

        os.environ.update(cluster.env)
        an = Analysis.open(
            gamma_touch_analysis(Path(tmp) / "sub", n, "slurm", "    extra_options: ['--hold']\n")
        )
        try:
            scripts = plain_scripts(an, Path(tmp), n)
            plain, engine = bench_submit(an, scripts, rounds)
            raw, eng, calls = bench_refresh(an, repeat)
            if args.accounting:
                gone = bench_gone(an, cluster, repeat)
        finally:
            an.close()
        cluster.client("scancel", "-u", "root", timeout=120)
        e2e = bench_e2e(Path(tmp), m) if m else None
    print(f"submit {n} jobs (held; {rounds} rounds, the two alternating):")
    print(f"  plain sbatch --parsable loop                {plain:7.2f} s")
    print(
        f"  engine exactly-once submit (store included) {engine:7.2f} s   ratio {engine / plain:.2f} (target <= 1.2)"
    )
    print(f"refresh {n} active jobs (median of {repeat}):")
    print(f"  raw squeue of the same ids                  {raw * 1e3:7.1f} ms")
    print(
        f"  engine refresh                              {eng * 1e3:7.1f} ms   ratio {eng / raw:.2f}, {calls:.0f} Slurm client call(s)"
    )
    if gone is not None:
        print(f"poll {n} jobs that left squeue (cancelled; median of {repeat}):")
        print(f"  raw sacct of the same ids                   {gone[0] * 1e3:7.1f} ms")
        print(
            f"  engine poll (squeue, then sacct)            {gone[1] * 1e3:7.1f} ms   ratio {gone[1] / gone[0]:.2f}, {gone[2]:.0f} Slurm client call(s)"
        )
    if e2e is not None:
        print(f"{m} no-op jobs end to end{' (accounting, MinJobAge=2)' if args.accounting else ''}:")
        print(f"  plain sbatch loop + squeue wait             {e2e[0]:7.2f} s")
        print(f"  gridpipe run                                {e2e[1]:7.2f} s   ratio {e2e[1] / e2e[0]:.2f}")


if __name__ == "__main__":
    main()
