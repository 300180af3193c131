"""The slurm backend against a real Slurm cluster: the conformance suite, the engine on it, states and
reasons, logs, settings, hostile values, and slurmctld going away."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis, poll_until_final, use_backend

from gridpipe.backends.slurm import SlurmBackend
from gridpipe.backends.slurm_client import SlurmUnreachableError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


@pytest.fixture
def slurm_analysis(slurm_cluster, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm")
    return path


class TestSlurmBackend(BackendConformance):
    @pytest.fixture
    def backend(self, slurm_analysis):
        an = Analysis.open(slurm_analysis)
        assert isinstance(an.backend, SlurmBackend)
        yield an.backend
        an.close()


def _status(path):
    done = gridpipe("status", "--json", "-a", str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_drives_the_analysis_to_the_end_every_grid_job_through_sbatch(slurm_cluster, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 5, "proton": 3})
    use_backend(path, "slurm")
    result = gridpipe("run", "-a", str(path), "--poll-interval", "0.2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the analysis is complete" in result.stdout
    assert (path / "data" / "OUT" / "gamma" / "OUT_gamma_tail_run5.txt").read_text() == "gamma run 5\n"
    assert (path / "results" / "summary.txt").read_text() == "ok"
    status = _status(path)
    grid_jobs = [j for j in status["jobs"] if j["stage"] == "produce"]
    assert len(grid_jobs) == 5 and all(j["status"] == "done" for j in grid_jobs)
    # every grid job is one Slurm job that ran once: one attempt folder, one exit record, one Slurm id
    ids = {j["backend_id"] for j in grid_jobs}
    ran = list((path / ".gridpipe" / "slurm" / "jobs").glob("*/*/job.exit.json"))
    assert len(ran) == 5
    listed = slurm_cluster.client("squeue", "-h", "-t", "all", "-o", "%i|%j").stdout
    assert ids <= {line.split("|")[0] for line in listed.splitlines()}
    again = gridpipe("run", "-a", str(path), "--poll-interval", "0.2", timeout=120)
    assert again.returncode == 0
    assert len(list((path / ".gridpipe" / "slurm" / "jobs").glob("*/*/job.exit.json"))) == 5


def test_failures_show_exit_code_and_slurm_reason_and_are_retried(slurm_cluster, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    use_backend(path, "slurm")
    result = gridpipe(
        "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.2", env={"FAIL_proton": "3"},
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    job = next(j for j in _status(path)["jobs"] if j["name"] == "eng_OUT_proton_run1-run2")
    assert job["status"] == "failed" and job["attempts"] == 2
    assert "Slurm: FAILED (NonZeroExitCode)" in job["reason"]
    assert "exited with code 3" in job["reason"]
    # two attempts, two folders, each with its own exit record
    folders = sorted((path / ".gridpipe" / "slurm" / "jobs" / "eng_OUT_proton_run1-run2").iterdir())
    assert [f.name for f in folders] == ["1", "2"]
    logs = gridpipe("logs", "eng_OUT_proton_run1-run2", "-a", str(path))
    assert logs.returncode == 0, logs.stderr
    assert "job.exit.json" in logs.stdout and f"slurm-{job['backend_id']}.err" in logs.stdout
    assert '"exit_code": 3' in logs.stdout


def test_a_job_over_its_time_limit_fails_with_timeout_as_its_reason(slurm_analysis):
    an = Analysis.open(slurm_analysis)
    backend = an.backend
    spec = JobSpec("slow-job", "s", "u", (("sleep", "300"),), where="local")
    backend.settings = backend.settings.model_copy(update={"time_limit": "0:01"})
    ids = backend.submit([spec])
    polled = poll_until_final(backend, list(ids.values()), timeout=150)
    status = polled[ids["slow-job"]]
    assert status.status == JobStatus.FAILED
    assert status.reason.startswith("Slurm: TIMEOUT"), status.reason
    an.close()


def test_settings_reach_sbatch_and_hostile_values_are_carried_exactly(slurm_cluster, tmp_path):
    hostile = "$(touch /tmp/gridpipe-pwned); `id` ; a|b 'q' \"dq\" \\ end"
    path = make_analysis(tmp_path, {"gamma": 1})
    section = (
        "    partition: debug\n"
        "    cpus_per_task: 2\n"
        "    memory: 100M\n"
        "    time_limit: '10:00'\n"
        "    extra_options: ['--hint=nomultithread']\n"
        f'    environment: {{HOSTILE: {json.dumps(hostile)}, TWO_LINES: "a\\nb"}}\n'
    )
    use_backend(path, "slurm", section)
    an = Analysis.open(path)
    backend = an.backend
    spec = JobSpec(
        "env-job", "s", "u", (("sh", "-c", 'printf "%s|%s" "$HOSTILE" "$TWO_LINES"'),), where="local"
    )
    described = backend.describe(spec)
    assert "--partition=debug" in described and "--mem=100M" in described and "--time=10:00" in described
    ids = backend.submit([spec])
    poll_until_final(backend, list(ids.values()))
    shown = slurm_cluster.client("scontrol", "-o", "show", "job", ids["env-job"]).stdout
    assert "NumCPUs=2" in shown and "TimeLimit=00:10:00" in shown
    logs = backend.logs(ids["env-job"])
    assert logs["job.stdout.log"].endswith(f"\n{hostile}|a\nb")  # after the worker's "$ command" line
    assert not Path("/tmp/gridpipe-pwned").exists()
    an.close()


@pytest.mark.parametrize(
    ("option", "why"),
    [
        ("--job-name=x", "gridpipe names every job"),
        ("-Jx", "gridpipe names every job"),
        ("--output=/tmp/x", "job folder"),
        ("--partition=x", "backend.slurm.partition"),
        ("constraint=gpu", "starts with '-'"),
        ("--comment=$(id)", "marks every job"),
        ("--constraint=a\nb", "newline"),
    ],
)
def test_options_gridpipe_sets_are_refused_by_check_with_the_reason(tmp_path, option, why):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm", f"    extra_options: [{json.dumps(option)}]\n")
    result = gridpipe("check", "-a", str(path))
    assert result.returncode == 2
    assert "backend.slurm.extra_options" in result.stderr + result.stdout
    assert why in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("key", "value"),
    [("partition", "debug;rm -rf /"), ("memory", "4 GB"), ("time_limit", "$(date)"), ("account", "a\nb")],
)
def test_hostile_settings_are_refused_in_one_line(tmp_path, key, value):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm", f"    {key}: {json.dumps(value)}\n")
    result = gridpipe("check", "-a", str(path))
    assert result.returncode == 2
    assert f"backend.slurm.{key}" in result.stderr + result.stdout


@pytest.mark.slow
def test_slurmctld_down_is_a_backend_error_after_bounded_retries_then_work_carries_on(
    slurm_cluster, tmp_path
):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "slurm", "    retries: 1\n    backoff: 0.2\n    command_timeout: 25\n")
    an = Analysis.open(path)
    backend = an.backend
    ids = backend.submit([JobSpec("before-outage", "s", "u", (("sleep", "3"),), where="local")])
    slurm_cluster.stop_controller()
    try:
        started = time.monotonic()
        with pytest.raises(SlurmUnreachableError) as caught:
            backend.poll(list(ids.values()))
        assert time.monotonic() - started < 2 * 25 + 5  # (1 + retries) calls, each within its timeout
        assert "Slurm cannot be reached" in caught.value.detail
        with pytest.raises(SlurmUnreachableError):
            backend.submit([JobSpec("during-outage", "s", "u", (("true",),), where="local")])
    finally:
        slurm_cluster.start_controller()
    polled = poll_until_final(backend, list(ids.values()))
    assert polled[ids["before-outage"]].status == JobStatus.DONE
    # the refused submission never became a job
    assert backend.lookup(["during-outage"]) == {}
    an.close()


def _workflow_with_backends(tmp_path, produce: str | None, summarise: str | None):
    from engine_helpers import DATA

    text = (DATA / "touch_workflow.yaml").read_text()
    if produce:
        text = text.replace("  - name: produce\n", f"  - name: produce\n    backend: {produce}\n", 1)
    if summarise:
        text = text.replace("  - name: summarise\n", f"  - name: summarise\n    backend: {summarise}\n", 1)
    path = tmp_path / "workflow.yaml"
    path.write_text(text)
    return path


def test_a_stage_names_its_own_backend_one_store_one_run(slurm_cluster, tmp_path):
    """The analysis's backend stays `local`; the grid stage runs on Slurm, the local stage on this machine:
    one job store, one `gridpipe run`, and `status` says where each job ran."""
    workflow = _workflow_with_backends(tmp_path, "slurm", None)
    path = make_analysis(tmp_path / "a", {"gamma": 3, "proton": 2}, workflow=workflow)
    result = gridpipe("run", "-a", str(path), "--poll-interval", "0.2", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = _status(path)["jobs"]
    assert {j["backend"] for j in jobs if j["stage"] == "produce"} == {"slurm"}
    assert {j["backend"] for j in jobs if j["stage"] == "summarise"} == {"local"}
    assert len(list((path / ".gridpipe" / "slurm" / "jobs").glob("*/*/job.exit.json"))) == 3
    table = gridpipe("status", "--jobs", "--no-refresh", "-a", str(path))
    assert any("produce" in line and "slurm" in line for line in table.stdout.splitlines())


def test_check_refuses_a_local_stage_on_a_backend_that_does_not_share_files(tmp_path):
    workflow = _workflow_with_backends(tmp_path, None, "dirac")
    path = make_analysis(tmp_path / "a", {"gamma": 1}, workflow=workflow)
    result = gridpipe("check", "-a", str(path))
    assert result.returncode == 2
    assert "stage 'summarise': key 'backend'" in result.stdout + result.stderr
    installed = path / "configs" / "workflow.yaml"
    installed.write_text(installed.read_text().replace("backend: dirac", "backend: slurmm"))
    result = gridpipe("check", "-a", str(path))
    assert result.returncode == 2 and "did you mean 'slurm'" in result.stdout + result.stderr


@pytest.mark.slow
def test_the_demo_runs_to_the_performance_plot_on_slurm(slurm_cluster, tmp_path):
    result = gridpipe("demo", str(tmp_path / "demo"), "--backend", "slurm", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    path = tmp_path / "demo" / "gridpipe_demo"
    assert (path / "data" / "DL3" / "performance.png").stat().st_size > 0
    jobs = _status(path)["jobs"]
    assert jobs and all(j["status"] == "done" for j in jobs)
    on_slurm = [j for j in jobs if j["backend"] == "slurm"]
    assert {j["stage"] for j in on_slurm} >= {"training_energy", "dl2"}
    # every grid job went through sbatch exactly once: one Slurm id, one attempt folder, one exit record
    records = list((path / ".gridpipe" / "slurm" / "jobs").glob("*/*/job.exit.json"))
    assert len(records) == len(on_slurm) == len({j["backend_id"] for j in on_slurm})
    again = gridpipe("demo", str(tmp_path / "demo"), "--backend", "local")
    assert again.returncode == 2 and "runs on the 'slurm' backend" in again.stderr
