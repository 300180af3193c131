"""The job engine on the real local backend: planning, submit, status, run, retries, kill, logs."""

from __future__ import annotations

import json
import time

import pytest
from engine_helpers import (
    LFN_DIR,
    gridpipe,
    make_analysis,
    slow_workflow,
    start_run,
    wait_executor_gone,
    wait_idle,
)

from gridpipe.backends.local_queue import LocalQueue
from gridpipe.service.context import Analysis


def _status(path):
    result = gridpipe("status", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_plans_but_creates_no_job(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 5, "proton": 2})
    result = gridpipe("submit", "--output_type", "TRAINING", "--dry-run", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    names = [job["name"] for job in plan["jobs"]]
    assert names == [
        "eng_OUT_gamma_run1-run2",
        "eng_OUT_gamma_run3-run4",
        "eng_OUT_gamma_run5",
        "eng_OUT_proton_run1-run2",
    ]
    first = plan["jobs"][0]
    assert first["inputs"] == [f"{LFN_DIR}/gamma/gamma_run1.txt", f"{LFN_DIR}/gamma/gamma_run2.txt"]
    assert first["outputs"] == ["/vo.cta.in2p3.fr/user/" + first["outputs"][0].split("/user/")[1]]
    assert first["outputs"][0].endswith("/eng/data/OUT/gamma/OUT_gamma_tail_run1-run2.txt")
    assert first["commands"][0][-3:] == ["OUT_gamma_tail_run1-run2.txt", "gamma_run1.txt", "gamma_run2.txt"]
    # nothing reached the backend, nothing was recorded
    queue = LocalQueue(path / ".gridpipe" / "local")
    assert queue.by_names(names) == []
    queue.close()
    assert _status(path)["jobs"] == []


def test_submit_test_submits_exactly_one_and_never_twice(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 6, "proton": 1})
    result = gridpipe("submit", "--output-type", "TRAINING", "--test", "--particle", "gamma", "-a", str(path))
    assert result.returncode == 0, result.stderr
    queue = wait_idle(path)
    assert [name for _, name in queue.ledger()] == ["eng_OUT_gamma_run1-run2"]
    # a second submit takes the rest but never the job already submitted
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    wait_idle(path).close()
    started = [name for _, name in queue.ledger()]
    queue.close()
    assert sorted(started) == sorted(set(started))
    assert len(started) == 4
    status = _status(path)
    assert status["stages"]["produce"] == {"gamma": {"done": 3}, "proton": {"done": 1}}
    assert {job["status"] for job in status["jobs"]} == {"done"}


def test_max_jobs_caps_and_existing_outputs_are_skipped(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 6})
    an = Analysis.open(path)
    existing = f"{an.grid_dir}/data/OUT/gamma/OUT_gamma_tail_run3-run4.txt"
    src = tmp_path / "already.txt"
    src.write_text("made earlier")
    an.storage.put(src, existing)
    an.close()
    result = gridpipe("submit", "--output_type", "TRAINING", "--max-jobs", "1", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert list(report["submitted"]) == ["eng_OUT_gamma_run1-run2"]
    assert report["skipped_existing_outputs"] == ["eng_OUT_gamma_run3-run4"]
    wait_idle(path).close()
    jobs = {job["name"]: job["status"] for job in _status(path)["jobs"]}
    assert jobs == {
        "eng_OUT_gamma_run1-run2": "done",
        "eng_OUT_gamma_run3-run4": "done",
        "eng_OUT_gamma_run5-run6": "planned",
    }


def test_run_drives_every_stage_to_the_end(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 5, "proton": 3})
    result = gridpipe("run", "-a", str(path), "--poll-interval", "0.1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the analysis is complete" in result.stdout
    gathered = sorted(p.name for p in (path / "data" / "OUT" / "gamma").iterdir())
    assert gathered == [
        "OUT_gamma_tail_run1-run2.txt",
        "OUT_gamma_tail_run3-run4.txt",
        "OUT_gamma_tail_run5.txt",
    ]
    assert (path / "data" / "OUT" / "gamma" / "OUT_gamma_tail_run5.txt").read_text() == "gamma run 5\n"
    assert (path / "results" / "summary.txt").read_text() == "ok"
    status = _status(path)
    assert status["stages"]["summarise"] == {"all": {"done": 1}}
    # running again changes nothing and submits nothing
    again = gridpipe("run", "-a", str(path), "--poll-interval", "0.1")
    assert again.returncode == 0
    queue = LocalQueue(path / ".gridpipe" / "local")
    assert len(queue.ledger()) == 6
    queue.close()


def test_failures_are_retried_up_to_max_attempts_then_reported(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    result = gridpipe(
        "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.1", env={"FAIL_proton": "3"}
    )
    assert result.returncode == 1
    assert "failed for good" in result.stdout
    jobs = {job["name"]: job for job in _status(path)["jobs"]}
    assert jobs["eng_OUT_proton_run1-run2"]["status"] == "failed"
    assert jobs["eng_OUT_proton_run1-run2"]["attempts"] == 2
    assert jobs["eng_OUT_gamma_run1-run2"]["status"] == "done"
    assert "exited with code 3" in jobs["eng_OUT_proton_run1-run2"]["reason"]
    logs = gridpipe("logs", "eng_OUT_proton_run1-run2", "-a", str(path))
    assert logs.returncode == 0 and "OUT_proton_tail_run1-run2.txt" in logs.stdout
    # the dependent local stage never started
    assert "summarise" not in _status(path)["stages"]


def test_kill_stops_a_running_job(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1}, workflow=slow_workflow(tmp_path, 60))
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    deadline = time.monotonic() + 20
    while _status(path)["jobs"][0]["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = gridpipe("kill", "--all", "-a", str(path))
    assert result.returncode == 0 and "killed 1" in result.stdout
    queue = wait_idle(path, timeout=20)
    assert queue.rows(["1"])[0].status == "killed"
    queue.close()
    assert _status(path)["jobs"][0]["status"] == "killed"


def test_kill_of_a_queued_job_reports_it_killed(tmp_path):
    path = make_analysis(
        tmp_path, {"gamma": 3}, workflow=slow_workflow(tmp_path, 60), n_file_per_job=1, max_workers=1
    )
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    result = gridpipe("kill", "eng_OUT_gamma_run3", "-a", str(path))  # one runner: run3 waits in the queue
    assert result.returncode == 0 and result.stdout == "killed 1 job(s)\n", result.stdout + result.stderr
    assert gridpipe("kill", "--all", "-a", str(path)).stdout.startswith("killed 2 job(s)")
    wait_idle(path, timeout=30).close()
    assert {job["status"] for job in _status(path)["jobs"]} == {"killed"}


def test_kill_leaves_a_job_that_has_already_ended_as_it_ended(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1})
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    wait_idle(path).close()  # both jobs ended on the backend; nothing has refreshed the job store yet
    result = gridpipe("kill", "eng_OUT_gamma_run1-run2", "-a", str(path))
    assert result.returncode == 0, result.stderr
    assert "killed 0 job(s)" in result.stdout
    assert "not killed: eng_OUT_gamma_run1-run2 had already ended (done)" in result.stdout
    jobs = {job["name"]: job["status"] for job in _status(path)["jobs"]}
    assert jobs == {"eng_OUT_gamma_run1-run2": "done", "eng_OUT_proton_run1": "done"}
    assert gridpipe("kill", "--all", "-a", str(path)).stdout.startswith("killed 0 job(s)")


def test_a_second_run_is_refused_while_the_first_drives_the_analysis(tmp_path):
    # jobs of 4 s: the first run is still driving when the second one has started, even on a busy machine
    path = make_analysis(
        tmp_path, {"gamma": 2, "proton": 1}, workflow=slow_workflow(tmp_path, 4), n_file_per_job=1
    )
    first = start_run(path)
    deadline = time.monotonic() + 30
    while not _status(path)["jobs"]:  # the first run has planned its jobs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = gridpipe("run", "-a", str(path), "--poll-interval", "0.05")
    assert second.returncode == 1
    assert f"another gridpipe run (process {first.pid}) is already driving" in second.stderr
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    queue = LocalQueue(path / ".gridpipe" / "local")
    names = [name for _, name in queue.ledger()]
    queue.close()
    assert len(names) == len(set(names)) == 4  # three grid jobs and the summary, each started once
    again = gridpipe("run", "-a", str(path), "--poll-interval", "0.05")  # the lock went with the first run
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("bad", ["relative/path.txt", "/a/../b.txt", "/with space.txt"])
def test_bad_list_lines_are_refused_with_file_and_line(tmp_path, bad):
    path = make_analysis(tmp_path, {"gamma": 1})
    lst = path / "data" / "simtel" / "gamma_in.list"
    lst.write_text(lst.read_text() + bad + "\n")
    result = gridpipe("submit", "--output_type", "TRAINING", "--dry-run", "-a", str(path))
    assert result.returncode == 2
    assert f"{lst}:2" in result.stderr and "Traceback" not in result.stderr


def test_status_while_a_run_is_going(tmp_path):
    """Several gridpipe processes at once: `status` (which also refreshes) during `run`."""
    workflow = slow_workflow(tmp_path, 0.3)
    path = make_analysis(tmp_path, {"gamma": 8, "proton": 4}, workflow=workflow, n_file_per_job=1)
    run = start_run(path)
    seen = set()
    while run.poll() is None:
        status = _status(path)
        seen |= {job["status"] for job in status["jobs"]}
    out, err = run.communicate()
    assert run.returncode == 0, out + err
    assert "running" in seen or "queued" in seen
    final = _status(path)
    assert final["stages"]["produce"] == {"gamma": {"done": 8}, "proton": {"done": 4}}
    queue = LocalQueue(path / ".gridpipe" / "local")
    assert len(queue.ledger()) == 13
    queue.close()


def test_resubmit_failed_jobs_after_fixing_the_cause(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    failing = gridpipe(
        "run", "-a", str(path), "--max-attempts", "1", "--poll-interval", "0.1", env={"FAIL_proton": "1"}
    )
    assert failing.returncode == 1
    wait_executor_gone(path)  # the next executor starts without FAIL_proton
    again = gridpipe("resubmit", "--failed", "-a", str(path))
    assert again.returncode == 0 and "resubmitted 1 job(s)" in again.stdout
    done = gridpipe("run", "-a", str(path), "--poll-interval", "0.1")
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = {job["name"]: job for job in _status(path)["jobs"]}
    assert jobs["eng_OUT_proton_run1-run2"]["status"] == "done"
    assert (
        jobs["eng_OUT_proton_run1-run2"]["attempts"] == 2
    )  # submissions: the failed one and the resubmission
    assert gridpipe("resubmit", "-a", str(path)).returncode == 2  # names or --failed are required


def test_ctrl_c_stops_cleanly_and_run_resumes(tmp_path):
    import signal

    workflow = slow_workflow(tmp_path, 0.5)
    path = make_analysis(tmp_path, {"gamma": 6, "proton": 2}, workflow=workflow, n_file_per_job=1)
    run = start_run(path)
    deadline = time.monotonic() + 30
    while not any(job["status"] == "running" for job in _status(path)["jobs"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130
    assert "gridpipe run" in out + err and "Traceback" not in err
    resumed = gridpipe("run", "-a", str(path), "--poll-interval", "0.05")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    queue = LocalQueue(path / ".gridpipe" / "local")
    names = [name for _, name in queue.ledger()]
    queue.close()
    assert len(names) == len(set(names)) == 9
