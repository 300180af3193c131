"""The slurm backend on a cluster with accounting (slurmdbd + MariaDB): jobs that left squeue keep their
state and reason through one sacct call, a crash is reconciled through squeue and sacct, and a job over its
memory limit is killed by Slurm, shown with the reason and retried."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from engine_helpers import DATA, gridpipe, make_analysis, use_backend
from slurm_cluster import SlurmCluster

from gridpipe.backends.slurm import SlurmBackend
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


class TestSlurmBackendWithAccounting(BackendConformance):
    @pytest.fixture
    def backend(self, slurm_accounting, tmp_path):
        path = make_analysis(tmp_path / "conformance", {"gamma": 1})
        use_backend(path, "slurm")
        with Analysis.open(path) as an:
            assert isinstance(an.backend, SlurmBackend)
            yield an.backend


def test_run_with_accounting_drives_to_the_end_and_retries_failures_once_each(slurm_accounting, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 3, "proton": 2}, n_file_per_job=1)
    use_backend(path, "slurm")
    result = gridpipe(
        "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.3", env={"FAIL_proton": "3"},
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    jobs = {j["name"]: j for j in json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]}
    for run in (1, 2, 3):
        assert jobs[f"eng_OUT_gamma_run{run}"]["status"] == "done"
    for run in (1, 2):
        job = jobs[f"eng_OUT_proton_run{run}"]
        assert job["status"] == "failed" and job["attempts"] == 2, job
        assert job["reason"].startswith("Slurm: FAILED") and "exited with code 3" in job["reason"]
    # Slurm's accounting agrees: one Slurm job per attempt, no more
    from test_slurm_exactly_once import _slurm_jobs

    per_name = Counter(name for _, name, _ in _slurm_jobs(slurm_accounting, path))
    assert per_name == Counter(
        {**{f"eng_OUT_gamma_run{r}": 1 for r in (1, 2, 3)}, **{f"eng_OUT_proton_run{r}": 2 for r in (1, 2)}}
    )


def _spec(name: str, *command: str) -> JobSpec:
    return JobSpec(name, "s", "u", (command,), where="local")


def _in_squeue(cluster, ids) -> set[str]:
    out = cluster.client("squeue", "-h", "-t", "all", "-o", "%i").stdout
    return set(out.split()) & set(ids)


def _in_sacct(cluster, ids) -> dict[str, str]:
    argv = ["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobIDRaw,State"]
    rows = [line.split("|") for line in cluster.client(*argv).stdout.splitlines()]
    return {r[0]: r[1] for r in rows if len(r) == 2}


def _wait_only_in_sacct(cluster, ids, timeout: float = 120) -> None:
    """Until every job has left squeue (MinJobAge) and accounting shows each one ended."""
    deadline = time.monotonic() + timeout
    while _in_squeue(cluster, ids) or any(
        s in ("PENDING", "RUNNING", "") for s in [_in_sacct(cluster, ids).get(i, "") for i in ids]
    ):
        assert time.monotonic() < deadline, (_in_squeue(cluster, ids), _in_sacct(cluster, ids))
        time.sleep(1)


def _wait_state(cluster, slurm_id: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while cluster.client("squeue", "-h", "-j", slurm_id, "-o", "%T").stdout.strip() != state:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_jobs_that_left_squeue_keep_state_and_reason_through_one_sacct(slurm_accounting, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm")
    with Analysis.open(path) as an:
        backend = an.backend
        assert isinstance(backend, SlurmBackend)
        ids = backend.submit(
            [
                _spec("ok-job", "true"),
                _spec("Exit3-Job", "sh", "-c", "exit 3"),  # accounting may keep names in lower case
                _spec("cancelled-job", "sleep", "300"),
            ]
        )
        _wait_state(slurm_accounting, ids["cancelled-job"], "RUNNING")
        backend.cancel([ids["cancelled-job"]])
        _wait_only_in_sacct(slurm_accounting, list(ids.values()))
        before = backend.client.calls
        polled = {s.backend_id: s for s in backend.poll(list(ids.values()))}
        assert backend.client.calls - before == 2  # one squeue (which knows none of them), one sacct
        assert polled[ids["ok-job"]].status == JobStatus.DONE
        failed = polled[ids["Exit3-Job"]]
        assert failed.status == JobStatus.FAILED and failed.exit_code == 3
        assert failed.reason.startswith("Slurm: FAILED"), failed.reason  # Slurm's row, from sacct
        killed = polled[ids["cancelled-job"]]
        assert killed.status == JobStatus.KILLED and killed.reason.startswith("Slurm: CANCELLED")
        # still active jobs cost no sacct call
        more = backend.submit([_spec("sleeper", "sleep", "30")])
        before = backend.client.calls
        assert backend.poll(list(more.values()))[0].status in (JobStatus.QUEUED, JobStatus.RUNNING)
        assert backend.client.calls - before == 1
        backend.cancel(list(more.values()))


@contextmanager
def _node_taken(cluster: SlurmCluster) -> Iterator[str]:
    """The node taken by a job of its own (its id yielded), so that jobs submitted meanwhile stay pending."""
    blocker = cluster.client(
        "sbatch", "--parsable", "--exclusive", "-J", "blocker", "--output=/dev/null", "--wrap", "sleep 300"
    ).stdout.strip()
    try:
        _wait_state(cluster, blocker, "RUNNING")
        yield blocker
    finally:
        cluster.client("scancel", blocker)


def test_after_a_crash_lookup_finds_a_job_only_accounting_remembers(slurm_accounting, tmp_path):
    """sbatch took the job, the submitter died before linking its id, the job never started (cancelled
    while pending) and left squeue: no file names its id; only sacct does."""
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm")
    with _node_taken(slurm_accounting):
        with Analysis.open(path) as an:
            backend = an.backend
            assert isinstance(backend, SlurmBackend)
            slurm_id = backend.submit([_spec("Lost-Job", "true")])["Lost-Job"]
            link = backend.folders.root / "ids" / slurm_id
            link.unlink()  # what a kill between sbatch's answer and the link leaves
            _wait_state(slurm_accounting, slurm_id, "PENDING")
            slurm_accounting.client("scancel", slurm_id)
            _wait_only_in_sacct(slurm_accounting, [slurm_id])
        with Analysis.open(path) as an:  # a new process: it does not know yet whether there is accounting
            backend = an.backend
            assert isinstance(backend, SlurmBackend) and backend.accounting is None
            found = backend.lookup(["Lost-Job", "never-submitted"])
            assert [(j.backend_id, j.status) for j in found["Lost-Job"]] == [(slurm_id, JobStatus.KILLED)]
            assert "never-submitted" not in found and backend.accounting is True
            assert link.is_symlink()  # linked again: its folder, logs and exit record are found by id


@pytest.mark.slow
def test_kill_9_during_submission_with_accounting_runs_every_job_once(slurm_accounting, tmp_path):
    from test_slurm_exactly_once import kill_submissions_then_finish

    kill_submissions_then_finish(slurm_accounting, tmp_path, n_jobs=60, step=5)


def _memory_workflow(tmp_path):
    """The touch workflow whose grid jobs first fill HOG_<particle> megabytes of memory and hold them for 4 s
    (slurmstepd samples memory once a second: a job that let go at once could slip between two samples)."""
    text = (DATA / "touch_workflow.yaml").read_text()
    hog = (
        'import time; x = \\"x\\" * (int(os.environ.get(\\"HOG_\\" + os.path.basename(sys.argv[1]).split(\\"_\\")[1],'
        ' \\"0\\")) << 20); time.sleep(4 if x else 0); '
    )
    text = text.replace("import sys,os; open(sys.argv[1]", "import sys,os; " + hog + "open(sys.argv[1]", 1)
    path = tmp_path / "workflow.yaml"
    path.write_text(text)
    return path


def test_a_job_over_its_memory_limit_is_killed_shown_with_the_reason_and_retried(slurm_accounting, tmp_path):
    path = make_analysis(
        tmp_path / "a", {"gamma": 1, "proton": 1}, n_file_per_job=1, workflow=_memory_workflow(tmp_path)
    )
    use_backend(path, "slurm", "    memory: 250M\n")
    result = gridpipe(
        "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.3", env={"HOG_proton": "800"},
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    jobs = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    gamma = next(j for j in jobs if j["name"] == "eng_OUT_gamma_run1")
    assert gamma["status"] == "done", gamma
    proton = next(j for j in jobs if j["name"] == "eng_OUT_proton_run1")
    assert proton["status"] == "failed" and proton["attempts"] == 2, proton
    assert "memory limit" in proton["reason"], proton["reason"]
    logs = gridpipe("logs", "eng_OUT_proton_run1", "-a", str(path))
    assert "Exceeded job memory limit" in logs.stdout


@pytest.mark.slow
def test_while_slurmdbd_is_down_forgotten_jobs_keep_their_state_or_take_their_exit_record(
    slurm_accounting, tmp_path
):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm", "    retries: 1\n    backoff: 0.1\n    command_timeout: 20\n")
    with _node_taken(slurm_accounting) as blocker:
        with Analysis.open(path) as an:
            backend = an.backend
            assert isinstance(backend, SlurmBackend)
            ids = backend.submit([_spec("never-ran", "true")])
            _wait_state(slurm_accounting, ids["never-ran"], "PENDING")
            slurm_accounting.stop_dbd()
            try:
                slurm_accounting.client("scancel", ids["never-ran"])  # ended while slurmdbd is away
                slurm_accounting.client("scancel", blocker)
                ids |= backend.submit([_spec("ran", "true")])
                deadline = time.monotonic() + 120
                while _in_squeue(slurm_accounting, ids.values()):
                    assert time.monotonic() < deadline
                    time.sleep(1)
                polled = {s.backend_id: s for s in backend.poll(list(ids.values()))}
                assert polled[ids["ran"]].status == JobStatus.DONE  # its exit record answers
                assert ids["never-ran"] not in polled  # no record, no accounting: not over, not failed
            finally:
                slurm_accounting.start_dbd()
            _wait_only_in_sacct(slurm_accounting, list(ids.values()))  # slurmctld sends what it queued
            polled = {s.backend_id: s for s in backend.poll(list(ids.values()))}
            assert polled[ids["never-ran"]].status == JobStatus.KILLED
            assert polled[ids["never-ran"]].reason.startswith("Slurm: CANCELLED")
