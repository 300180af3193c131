"""Slurm's states and rows in gridpipe's words (pure functions; the real cluster is in test_backend_slurm)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridpipe.backends.slurm_jobs import attempt_of, batch_script, marker
from gridpipe.backends.slurm_settings import refused_option
from gridpipe.backends.slurm_states import SlurmRow, parse_rows, status_of, stepd_note
from gridpipe.core.states import JobStatus
from gridpipe.worker.records import ExitRecord

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def row(state: str, reason: str = "None") -> SlurmRow:
    return SlurmRow("42", state, reason, "gridpipe:abc:1", "root", "job")


def record(status: JobStatus, code: int | None = 0, reason: str | None = None) -> ExitRecord:
    return ExitRecord(
        job="job", status=status, exit_code=code, reason=reason, started=NOW, ended=NOW, host="node1"
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("PENDING", JobStatus.QUEUED),
        ("CONFIGURING", JobStatus.QUEUED),
        ("REQUEUED", JobStatus.QUEUED),
        ("RUNNING", JobStatus.RUNNING),
        ("COMPLETING", JobStatus.RUNNING),
        ("SUSPENDED", JobStatus.RUNNING),
        ("FAILED", JobStatus.FAILED),
        ("TIMEOUT", JobStatus.FAILED),
        ("OUT_OF_MEMORY", JobStatus.FAILED),
        ("NODE_FAIL", JobStatus.FAILED),
        ("BOOT_FAIL", JobStatus.FAILED),
        ("DEADLINE", JobStatus.FAILED),
        ("PREEMPTED", JobStatus.FAILED),
        ("CANCELLED", JobStatus.KILLED),
    ],
)
def test_states_map_as_the_issue_says(state, expected):
    status = status_of(row(state, "Reason"), None)
    assert status is not None and status.status == expected
    if expected in (JobStatus.FAILED, JobStatus.KILLED):
        assert status.reason == f"Slurm: {state} (Reason)"


@pytest.mark.parametrize("state", ["UNKNOWN", "", "SOMETHING_NEW"])
def test_an_unknown_state_never_becomes_an_end(state):
    assert status_of(row(state), None) is None


def test_completed_is_done_only_with_the_workers_record():
    assert status_of(row("COMPLETED"), None).status == JobStatus.FAILED
    assert "no exit record" in status_of(row("COMPLETED"), None).reason
    done = status_of(row("COMPLETED"), record(JobStatus.DONE))
    assert done.status == JobStatus.DONE and done.site == "node1"
    failed = status_of(row("COMPLETED"), record(JobStatus.FAILED, 1, "outputs not registered"))
    assert failed.status == JobStatus.FAILED and failed.reason == "outputs not registered"


def test_out_of_memory_keeps_slurms_reason_and_the_workers_exit_code():
    status = status_of(row("OUT_OF_MEMORY", "OutOfMemory"), record(JobStatus.KILLED, 137, "got SIGKILL"))
    assert status.status == JobStatus.FAILED and status.exit_code == 137
    assert status.reason == "Slurm: OUT_OF_MEMORY (OutOfMemory); worker: got SIGKILL"


def test_rows_parse_with_the_name_last_and_skip_steps():
    text = "12|RUNNING|None|gridpipe:k:3|root|a_b-c\n13_1|RUNNING|None|x|root|arr\nbad line\n14|CANCELLED by 0|None|(null)|u|n\n"
    rows = parse_rows(text)
    assert [r.slurm_id for r in rows] == ["12", "14"]
    assert rows[0].name == "a_b-c" and rows[1].state == "CANCELLED"


def test_markers_carry_analysis_and_attempt_only_for_this_analysis():
    assert attempt_of(marker("abc", 7), "abc") == 7
    assert attempt_of(marker("abc", 7), "abd") is None
    assert attempt_of("gridpipe:abc:x", "abc") is None
    assert attempt_of("(null)", "abc") is None


def test_the_batch_script_quotes_every_path():
    script = batch_script("/opt/py thon/bin/python3", __import__("pathlib").Path("/a/$(id)/job.job.json"))
    assert "exec '/opt/py thon/bin/python3' -m gridpipe.worker '/a/$(id)/job.job.json'" in script


@pytest.mark.parametrize(
    ("option", "refused"),
    [
        ("--constraint=gpu", False),
        ("--gres=gpu:1", False),
        ("--exclusive", False),
        ("-Jname", True),
        ("--job-name=x", True),
        ("-p", True),
        ("--partition=x", True),
        ("--array=1-3", True),
        ("--wrap=echo", True),
        ("x", True),
        ("--nice=1\n--job-name=y", True),
    ],
)
def test_extra_options_gridpipe_sets_are_refused(option, refused):
    assert (refused_option(option) is not None) == refused


def test_slurmstepds_word_on_an_ended_job_joins_the_reason():
    err = (
        "gridpipe.worker: starting\n"
        "slurmstepd-node1: error: StepId=2.batch exceeded memory limit (836882432 > 262144000), being killed\n"
        "slurmstepd-node1: error: *** JOB 2 ON node1 CANCELLED AT 2026-11-30T16:19:25 ***\n"
        "slurmstepd-node1: error: Exceeded job memory limit\n"
    )
    note = stepd_note(err)
    assert note == "slurmstepd: StepId=2.batch exceeded memory limit (836882432 > 262144000), being killed"
    status = status_of(row("FAILED", "JobLaunchFailure"), None, note)
    assert status.status == JobStatus.FAILED
    assert status.reason == f"Slurm: FAILED (JobLaunchFailure); {note}"
    timeout = "slurmstepd: error: *** JOB 5 ON n CANCELLED AT 2026-11-30T10:00:00 DUE TO TIME LIMIT ***\n"
    assert (
        stepd_note(timeout)
        == "slurmstepd: *** JOB 5 ON n CANCELLED AT 2026-11-30T10:00:00 DUE TO TIME LIMIT ***"
    )
    assert stepd_note("gridpipe.worker: job x failed: python exited with code 3\n") is None


def test_sacct_rows_carry_the_working_folder_before_the_name(tmp_path):
    from gridpipe.backends.slurm_jobs import JobFolders

    folders = JobFolders(tmp_path)
    folder = folders.job_dir("Job-A") / "2"
    text = f"7|COMPLETED|None||root|{folder}|job-a\n8|FAILED|None||root|/elsewhere/2|Job-A\n9_1|RUNNING|||root|/x|arr\n"
    rows = parse_rows(text, workdir=True)
    assert [(r.slurm_id, r.workdir, r.name) for r in rows] == [
        ("7", str(folder), "job-a"),
        ("8", "/elsewhere/2", "Job-A"),
    ]
    assert folders.attempt_at(rows[0].workdir, "Job-A") == 2
    assert folders.attempt_at(rows[1].workdir, "Job-A") is None
    assert folders.attempt_at(str(folder), "Job-B") is None
    assert folders.attempt_at("", "Job-A") is None
