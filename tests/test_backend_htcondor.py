"""The htcondor backend against a real HTCondor pool: the conformance suite, the engine on it, states and
reasons (held, exit codes), logs, settings, hostile values, and the schedd going away.

Jobs run as the pool's ordinary user (root cannot own jobs), so the analyses are made in folders of that
user and `gridpipe` runs as that user (`pool.user_command`); in-process tests act as it (`pool.as_user`)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import gridpipe, kill_and_close, make_analysis, poll_until_final, use_backend

from gridpipe.backends.batch_folders import analysis_key
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.testing.backend_conformance import BackendConformance


def condor_analysis(pool, n_files: dict[str, int], section: str = "", **kwargs) -> Path:
    """An analysis on the htcondor backend in a folder of the pool's user, handed to that user."""
    folder = pool.workdir("analysis")
    path = make_analysis(folder, n_files, **kwargs)
    use_backend(path, "htcondor", section)
    pool.chown(folder)
    return path


def gp(pool, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    """`gridpipe ARGS` as the pool's user."""
    return pool.user_command([sys.executable, "-m", "gridpipe", *args], env=env or {}, timeout=timeout)


def status_of(pool, path: Path) -> dict:
    done = gp(pool, "status", "--json", "-a", str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class TestHTCondorBackend(BackendConformance):
    unknown_ids = ("987654321.0",)

    @pytest.fixture
    def tmp_path(self, htcondor_pool):
        return htcondor_pool.workdir("conformance")

    @pytest.fixture
    def backend(self, htcondor_pool, tmp_path):  # tmp_path first: it is made as root
        from gridpipe.backends.htcondor import HTCondorBackend

        path = condor_analysis(htcondor_pool, {"gamma": 1})
        with htcondor_pool.as_user():
            an = Analysis.open(path)
            assert isinstance(an.backend, HTCondorBackend)
            yield an.backend
            an.close()

    def drive(self, backend, ids, timeout: float = 90):
        return super().drive(backend, ids, timeout)


def test_run_drives_the_analysis_to_the_end_through_the_schedd(htcondor_pool):
    pool = htcondor_pool
    path = condor_analysis(pool, {"gamma": 5, "proton": 3})
    result = gp(pool, "run", "-a", str(path), "--poll-interval", "0.3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the analysis is complete" in result.stdout
    assert (path / "data" / "OUT" / "gamma" / "OUT_gamma_tail_run5.txt").read_text() == "gamma run 5\n"
    assert (path / "results" / "summary.txt").read_text() == "ok"
    grid_jobs = [j for j in status_of(pool, path)["jobs"] if j["stage"] == "produce"]
    assert len(grid_jobs) == 5 and all(j["status"] == "done" and j["attempts"] == 1 for j in grid_jobs)
    assert len(list((path / ".gridpipe" / "htcondor" / "jobs").glob("*.exit.json"))) == 5
    # every job is tagged: analysis, job, attempt, and a batch name users recognise in condor_q
    import htcondor2

    ads = htcondor2.Schedd().history(
        f'GridpipeJob == "{grid_jobs[0]["name"]}"', ["GridpipeAnalysis", "GridpipeAttempt", "JobBatchName"]
    )
    assert [(ad["GridpipeAttempt"], ad["JobBatchName"]) for ad in ads] == [(1, f"gridpipe-{path.name}")]
    again = gp(pool, "run", "-a", str(path), "--poll-interval", "0.3")
    assert again.returncode == 0
    assert len(list((path / ".gridpipe" / "htcondor" / "jobs").glob("*.exit.json"))) == 5


def test_a_payload_exiting_3_shows_exit_code_3_and_is_retried(htcondor_pool):
    pool = htcondor_pool
    # HTCondor jobs do not inherit the submitter's environment: the backend's `environment` carries it
    path = condor_analysis(pool, {"gamma": 2, "proton": 2}, "    environment: {FAIL_proton: '3'}\n")
    result = gp(pool, "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.3")
    assert result.returncode == 1, result.stdout + result.stderr
    job = next(j for j in status_of(pool, path)["jobs"] if j["name"] == "eng_OUT_proton_run1-run2")
    assert job["status"] == "failed" and job["attempts"] == 2
    assert "exited with code 3" in job["reason"]
    # each attempt's files are named by the submission (batch file) that made it, which holds the job
    condor = path / ".gridpipe" / "htcondor"
    records = sorted((condor / "jobs").glob("eng_OUT_proton_run1-run2.*.exit.json"))
    numbers = [r.name.removesuffix(".exit.json").rsplit(".", 1)[1] for r in records]
    assert len(set(numbers)) == 2 and not list((condor / "jobs").glob("*.job.json"))
    for n in numbers:
        assert f"eng_OUT_proton_run1-run2.{n}\t" in (condor / "batches" / f"{n}.jobs").read_text()
    logs = gp(pool, "logs", "eng_OUT_proton_run1-run2", "-a", str(path))
    assert logs.returncode == 0, logs.stderr
    assert '"exit_code": 3' in logs.stdout and "condor.err" in logs.stdout
    with pool.as_user():
        an = Analysis.open(path)
        polled = an.backend.poll([job["backend_id"]])
        an.close()
    assert polled[0].exit_code == 3 and polled[0].status == JobStatus.FAILED


def test_a_held_job_shows_the_hold_reason_then_fails_after_the_hold_timeout_and_is_retried(htcondor_pool):
    """The analysis lies in a folder the job's user cannot enter (gridpipe runs as root here): HTCondor
    holds the job ("Cannot access initial working directory"); gridpipe shows the reason, removes the job
    after `hold_timeout` and submits it again."""
    pool = htcondor_pool
    private = pool.workdir("private")
    private.chmod(0o700)
    import os

    os.chown(private, 0, 0)
    path = make_analysis(private, {"gamma": 1, "proton": 1}, n_file_per_job=1)
    use_backend(path, "htcondor", "    hold_timeout: 6\n")
    run = pool_run_as_root(path, "--max-attempts", "2", "--poll-interval", "0.3")
    try:
        reason = None
        deadline = time.monotonic() + 120
        while reason is None:
            jobs = json.loads(gridpipe("status", "--json", "--no-refresh", "-a", str(path)).stdout)["jobs"]
            held = [j for j in jobs if j["stage"] == "produce" and j["status"] == "running" and j["reason"]]
            if held:
                reason = held[0]["reason"]
            assert time.monotonic() < deadline and run.poll() is None, jobs
            time.sleep(0.3)
        assert reason.startswith("HTCondor: held: ") and "initial working directory" in reason, reason
        out, err = run.communicate(timeout=180)
    finally:
        kill_and_close(run)
    assert run.returncode == 1, out + err
    jobs = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    produce = [j for j in jobs if j["stage"] == "produce"]
    assert len(produce) == 2
    for job in produce:
        assert job["status"] == "failed" and job["attempts"] == 2
        assert "held longer than 6 s" in job["reason"] and "initial working directory" in job["reason"]
    # every attempt left the queue: gridpipe removed them
    import htcondor2

    left = htcondor2.Schedd().query(f'GridpipeAnalysis == "{analysis_key(path)}"', ["ClusterId"])
    assert left == []


def pool_run_as_root(path: Path, *options: str):
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "gridpipe", "run", "-a", str(path), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_settings_reach_the_job_ad_and_hostile_values_are_carried_exactly(htcondor_pool):
    pool = htcondor_pool
    hostile = "$(touch /tmp/gridpipe-pwned); `id` ; a|b 'q' \"dq\" \\ end $(GridpipeName)"
    section = (
        "    request_cpus: 2\n"
        "    request_memory: 100MB\n"
        "    requirements: 'TARGET.Cpus >= 1'\n"
        "    extra_submit: {'+ProjectName': '\"cta\"'}\n"
        f'    environment: {{HOSTILE: {json.dumps(hostile)}, TWO_LINES: "a\\nb"}}\n'
    )
    path = condor_analysis(pool, {"gamma": 1}, section)
    with pool.as_user():
        an = Analysis.open(path)
        backend = an.backend
        spec = JobSpec(
            "env-job", "s", "u", (("sh", "-c", 'printf "%s|%s" "$HOSTILE" "$TWO_LINES"'),), where="local"
        )
        described = backend.describe(spec)
        assert "request_cpus = 2" in described and "request_memory = 100MB" in described
        ids = backend.submit([spec])
        polled = poll_until_final(backend, list(ids.values()), timeout=90, step=0.3)
        assert polled[ids["env-job"]].status == JobStatus.DONE
        logs = backend.logs(ids["env-job"])
        an.close()
    assert logs["env-job.1.stdout.log"].endswith(f"\n{hostile}|a\nb")
    assert not Path("/tmp/gridpipe-pwned").exists()
    import htcondor2

    cluster, proc = ids["env-job"].split(".")
    [ad] = htcondor2.Schedd().history(
        f"ClusterId == {cluster} && ProcId == {proc}", ["RequestCpus", "ProjectName", "GridpipeJob"]
    )
    assert (ad["RequestCpus"], ad["ProjectName"], ad["GridpipeJob"]) == (2, "cta", "env-job")


def test_hostile_job_names_and_paths_are_refused_before_anything_is_submitted(htcondor_pool):
    from gridpipe.backends.htcondor import HTCondorBackend
    from gridpipe.backends.htcondor_settings import HTCondorSection
    from gridpipe.core.exceptions import BackendError

    pool = htcondor_pool
    backend = HTCondorBackend(pool.workdir("plain"), HTCondorSection())
    for name in ('a"b', "x$(y)", "a\nqueue 5", "a b"):
        with pytest.raises(BackendError, match="cannot be given to HTCondor"):
            backend.submit([JobSpec(name, "s", "u", (("true",),), where="local")])
    odd = pool.workdir("plain") / "with space $(x)"
    odd.mkdir()
    backend = HTCondorBackend(odd, HTCondorSection())
    with pytest.raises(BackendError, match="cannot be handed to HTCondor"):
        backend.submit([JobSpec("fine", "s", "u", (("true",),), where="local")])
    assert not (odd / ".gridpipe" / "htcondor" / "ids").exists()


@pytest.mark.parametrize(
    ("line", "key", "why"),
    [
        ("extra_submit: {executable: /bin/sh}", "extra_submit", "job worker"),
        ("extra_submit: {'+GridpipeJob': '\"x\"'}", "extra_submit", "marks every job"),
        ("extra_submit: {'queue 5\\nx': y}", "extra_submit", "submit command is a name"),
        ("extra_submit: {'+Note': \"a\\nqueue 5\"}", "extra_submit", "newline"),
        ('requirements: "true\\nqueue 100"', "requirements", "newline"),
        ("requirements: 'Memory > && x'", "requirements", "not a ClassAd expression"),
        ("requirements: '(OpSys == \"LINUX\"'", "requirements", "not a ClassAd expression"),
        ("schedd: 'a;b'", "schedd", "letters"),
        ("request_memory: '4 lots'", "request_memory", "unit"),
        ("universe: grid", "universe", ""),
    ],
)
def test_hostile_settings_are_refused_by_check_in_one_line(tmp_path, line, key, why):
    path = make_analysis(tmp_path, {"gamma": 1})
    use_backend(path, "htcondor", f"    {line}\n")
    result = gridpipe("check", "-a", str(path))
    assert result.returncode == 2, result.stdout
    assert f"backend.htcondor.{key}" in result.stderr + result.stdout
    assert why in result.stderr + result.stdout


@pytest.mark.slow
def test_schedd_down_is_a_backend_error_after_bounded_retries_then_work_carries_on(htcondor_pool):
    from gridpipe.backends.htcondor_client import ScheddUnreachableError

    pool = htcondor_pool
    path = condor_analysis(pool, {"gamma": 1}, "    retries: 1\n    backoff: 0.2\n")
    with pool.as_user():
        an = Analysis.open(path)
        backend = an.backend
        ids = backend.submit([JobSpec("before-outage", "s", "u", (("sleep", "2"),), where="local")])
    pool.stop_schedd()
    try:
        with pool.as_user():
            started = time.monotonic()
            with pytest.raises(ScheddUnreachableError) as caught:
                backend.poll(list(ids.values()))
            assert time.monotonic() - started < 60
            assert "the HTCondor schedd cannot be reached" in caught.value.detail
            with pytest.raises(ScheddUnreachableError):
                backend.submit([JobSpec("during-outage", "s", "u", (("true",),), where="local")])
    finally:
        pool.start_schedd()
    with pool.as_user():
        polled = poll_until_final(backend, list(ids.values()), timeout=120)
        assert polled[ids["before-outage"]].status == JobStatus.DONE
        assert backend.lookup(["during-outage"]) == {}
        an.close()


@pytest.mark.slow
def test_the_demo_runs_to_the_performance_plot_on_htcondor(htcondor_pool):
    pool = htcondor_pool
    folder = pool.workdir("demo")
    result = gp(pool, "demo", str(folder / "demo"), "--backend", "htcondor", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    path = folder / "demo" / "gridpipe_demo"
    assert (path / "data" / "DL3" / "performance.png").stat().st_size > 0
    jobs = status_of(pool, path)["jobs"]
    assert jobs and all(j["status"] == "done" for j in jobs)
    on_condor = [j for j in jobs if j["backend"] == "htcondor"]
    assert {j["stage"] for j in on_condor} >= {"training_energy", "dl2"}
    records = list((path / ".gridpipe" / "htcondor" / "jobs").glob("*.exit.json"))
    assert len(records) == len(on_condor) == len({j["backend_id"] for j in on_condor})


NO_HTCONDOR = '''
import sys


class _NoHTCondor:
    """Imports of the HTCondor bindings fail exactly as where the `htcondor` extra is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("htcondor2", "classad2"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoHTCondor())
'''


def test_without_the_extra_the_backend_says_how_to_install_it_in_one_line(tmp_path):
    path = make_analysis(tmp_path / "a", {"gamma": 1})
    use_backend(path, "htcondor")
    hook = tmp_path / "no-htcondor"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_HTCONDOR)
    result = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env={"PYTHONPATH": str(hook)})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "gridpipe[htcondor]" in lines[0] and "Traceback" not in result.stderr, lines


def test_create_analysis_with_the_htcondor_backend_writes_its_settings_and_checks_clean(tmp_path):
    created = gridpipe(
        "create-analysis", "condor_ana", "--analyses-dir", str(tmp_path), "--backend", "htcondor"
    )
    assert created.returncode == 0, created.stdout + created.stderr
    path = tmp_path / "condor_ana"
    grid = (path / "configs" / "grid.yaml").read_text()
    assert 'name: "htcondor"' in grid and "\n  htcondor:\n" in grid and "\n    hold_timeout: 600.0\n" in grid
    checked = gridpipe("check", "-a", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_dry_run_shows_the_submit_description_and_contacts_no_schedd(tmp_path):
    path = make_analysis(tmp_path / "a", {"gamma": 2}, n_file_per_job=1)
    use_backend(path, "htcondor", "    request_memory: 2GB\n")
    result = gridpipe(
        "submit",
        "--output_type",
        "TRAINING",
        "--dry-run",
        "-a",
        str(path),
        env={"CONDOR_CONFIG": "/nonexistent"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '+GridpipeJob = "$(GridpipeName)"' in result.stdout and "request_memory = 2GB" in result.stdout
    assert not (path / ".gridpipe" / "htcondor" / "jobs").exists()


def test_with_file_transfer_the_job_file_goes_to_the_node_and_the_records_come_back(htcondor_pool):
    pool = htcondor_pool
    path = condor_analysis(pool, {"gamma": 1}, "    file_transfer: true\n")
    with pool.as_user():
        an = Analysis.open(path)
        backend = an.backend
        spec = JobSpec("moved-job", "s", "u", (("sh", "-c", "pwd; ls .."),), where="local")
        assert "should_transfer_files = YES" in backend.describe(spec)
        ids = backend.submit([spec])
        polled = poll_until_final(backend, list(ids.values()), timeout=90, step=0.3)
        assert polled[ids["moved-job"]].status == JobStatus.DONE, polled
        logs = backend.logs(ids["moved-job"])
        an.close()
    jobs = path / ".gridpipe" / "htcondor" / "jobs"
    # the job ran in HTCondor's scratch folder, not in the jobs' folder, with its chunk of the batch file,
    # and its records came back
    stdout = logs["moved-job.1.stdout.log"]
    assert str(jobs) not in stdout and "\n1.0.jobs\n" in stdout
    assert (jobs / "moved-job.1.exit.json").is_file() and not list(jobs.glob("*.jobs"))


def test_with_file_transfer_a_job_is_sent_its_chunk_of_the_batch_file(tmp_path):
    """No schedd: the files and item data a batch of 45 jobs is given (a job's chunk holds its line)."""
    from gridpipe.backends.htcondor_jobs import CHUNK, JobFolders, description
    from gridpipe.backends.htcondor_settings import HTCondorSection
    from gridpipe.worker.records import read_batch_job

    folders = JobFolders(tmp_path)
    folders.root.mkdir(parents=True)
    specs = [JobSpec(f"job{i}", "s", "u", (("true",),), where="local") for i in range(2 * CHUNK + 5)]
    batch = folders.new_batch(specs, {"A": "1"}, file_transfer=True)
    assert batch.number == 1 and folders.new_batch(specs[:1], {}, file_transfer=False).number == 2
    chunks = sorted(p.name for p in folders.batches.iterdir())
    assert chunks == ["1.0.jobs", "1.1.jobs", "1.2.jobs", "1.jobs", "2.jobs"]
    assert [len(folders.chunk_file(1, k).read_text().splitlines()) for k in range(3)] == [CHUNK, CHUNK, 5]
    for spec, folder, item in zip(specs, batch.folders, batch.items, strict=True):
        chunk = folders.chunk_file(1, item["GridpipeChunk"])
        assert read_batch_job(chunk, f"{spec.name}.1").spec.env == {"A": "1"}
        assert folder.job_file == folders.jobs / f"{spec.name}.1.job.json" and not folder.job_file.exists()
    desc = description(HTCondorSection(file_transfer=True), folders, "key", batch.number)
    assert desc["transfer_input_files"] == f"{folders.batches}/1.$(GridpipeChunk).jobs"
    assert desc["arguments"] == "$(GridpipeName).1.job.json 1.$(GridpipeChunk).jobs"


def test_batches_are_numbered_after_the_attempts_of_an_earlier_layout(tmp_path):
    """An analysis whose jobs an earlier gridpipe gave a job file each (jobs/<name>.<n>.job.json): the first
    batch is numbered after them, so no new attempt takes an earlier one's files."""
    from gridpipe.backends.htcondor_jobs import JobFolders

    folders = JobFolders(tmp_path)
    folders.jobs.mkdir(parents=True)
    for name in ("a.1.job.json", "a.7.job.json", "b.2.job.json", "a.9.exit.json"):
        (folders.jobs / name).write_text("{}")
    specs = [JobSpec("a", "s", "u", (("true",),), where="local")]
    assert folders.new_batch(specs, {}, file_transfer=False).number == 8
    assert folders.new_batch(specs, {}, file_transfer=False).number == 9


def test_a_named_schedd_is_located_through_the_collector(htcondor_pool):
    import htcondor2

    pool = htcondor_pool
    collector = f"127.0.0.1:{pool.port}"
    [ad] = htcondor2.Collector(collector).query(htcondor2.AdType.Schedd, projection=["Name"])
    path = condor_analysis(pool, {"gamma": 1}, f"    schedd: {ad['Name']}\n    collector: '{collector}'\n")
    with pool.as_user():
        an = Analysis.open(path)
        backend = an.backend
        ids = backend.submit([JobSpec("named-job", "s", "u", (("true",),), where="local")])
        assert (
            poll_until_final(backend, list(ids.values()), timeout=90, step=0.3)[ids["named-job"]].status
            == JobStatus.DONE
        )
        an.close()


def test_an_ended_job_carries_the_start_its_worker_recorded():
    """trace.tsv's `started` of an HTCondor attempt: the worker's record of when the job began on the node."""
    from datetime import UTC, datetime

    from gridpipe.backends.batch_folders import from_record
    from gridpipe.worker.records import ExitRecord

    began = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)
    record = ExitRecord(
        job="j", status=JobStatus.DONE, exit_code=0, reason=None, started=began, ended=began, host="node1"
    )
    status = from_record("12.0", record)
    assert (status.status, status.site, status.started) == (
        JobStatus.DONE,
        "node1",
        "2026-11-30T12:00:05+00:00",
    )
