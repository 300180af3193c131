"""The job worker: `python -m gridpipe.worker JOB_FILE` as a real subprocess on a real analysis and its local
storage, and the local backend running the same code in its runners."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path, PurePosixPath

import pytest
from engine_helpers import LFN_DIR, make_analysis, poll_until_final

from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis
from gridpipe.worker.records import (
    ExitRecord,
    JobFile,
    OutputRecord,
    RecordError,
    batch_line,
    exit_record_path,
    read_exit_record,
    read_job_file,
    write_exit_record,
    write_job_file,
)

INPUT = f"{LFN_DIR}/gamma/gamma_run1.txt"
OUTPUT = "/vo.test/user/w/worker/out/OUT_gamma_run1.txt"
PYTHON = sys.executable
UPPER = (
    "import sys; open('OUT_gamma_run1.txt', 'w').write(open('gamma_run1.txt').read().upper()); "
    "print('hello from the payload'); print('to stderr', file=sys.stderr)"
)
WAIT_PID = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(120)"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_analysis(tmp_path_factory.mktemp("worker"), {"gamma": 1})


def spec(
    name: str, *commands: list[str], outputs: tuple[str, ...] = (OUTPUT,), inputs: tuple[str, ...] = (INPUT,)
) -> JobSpec:
    return JobSpec(
        name=name,
        stage="work",
        unit="gamma",
        commands=tuple(tuple(argv) for argv in commands),
        inputs=inputs,
        outputs=outputs,
    )


def job_file(tmp_path: Path, analysis: Path, job: JobSpec) -> Path:
    path = tmp_path / "jobs" / f"{job.name}.job.json"
    write_job_file(path, JobFile(analysis=str(analysis), spec=job))
    return path


def worker(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "gridpipe.worker", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def record_of(path: Path) -> ExitRecord:
    record = read_exit_record(exit_record_path(path))
    assert record is not None
    return record


def stored(analysis: Path, lfns: list[str]) -> dict:
    an = Analysis.open(analysis)
    try:
        return an.storage.stat(lfns)
    finally:
        an.storage.close()
        an.close()


def test_a_job_is_staged_run_registered_and_recorded(tmp_path, analysis):
    job = spec(
        "w_ok",
        [PYTHON, "-c", UPPER],
        ["sh", "-c", "test -s OUT_gamma_run1.txt && echo second-command-ran"],
        outputs=("/vo.test/user/w/worker/ok/OUT_gamma_run1.txt",),
    )
    path = job_file(tmp_path, analysis, job)
    before = time.time()
    done = worker(path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    record = record_of(path)
    data = b"GAMMA RUN 1\n"
    lfn = job.outputs[0]
    assert record.status == JobStatus.DONE and record.exit_code == 0 and record.reason is None
    assert record.job == "w_ok" and record.host == socket.gethostname()
    assert before - 1 <= record.started.timestamp() <= record.ended.timestamp() <= time.time() + 1
    expected = OutputRecord(lfn=lfn, size=len(data), adler32=f"{zlib.adler32(data) & 0xFFFFFFFF:08x}")
    assert record.outputs == (expected,)
    info = stored(analysis, [lfn])[lfn]
    assert (info.size, info.adler32) == (expected.size, expected.adler32)
    stdout = (path.parent / "w_ok.stdout.log").read_text()
    assert "$ " in stdout and "hello from the payload" in stdout and "second-command-ran" in stdout
    assert (path.parent / "w_ok.stderr.log").read_text() == "to stderr\n"
    # cleaned up: the work folder is gone and nothing half-written is left beside the job file
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "w_ok.exit.json",
        "w_ok.job.json",
        "w_ok.stderr.log",
        "w_ok.stdout.log",
    ]
    assert json.loads(exit_record_path(path).read_text())["version"] == 1


def test_a_failing_command_ends_the_job_and_keeps_its_work_folder(tmp_path, analysis):
    lfn = "/vo.test/user/w/worker/fail/OUT_gamma_run1.txt"
    job = spec(
        "w_fail", ["sh", "-c", "echo partial > OUT_gamma_run1.txt; exit 3"], ["touch", "late"], outputs=(lfn,)
    )
    path = job_file(tmp_path, analysis, job)
    done = worker(path)
    assert done.returncode == 1
    assert done.stderr == "gridpipe.worker: job w_fail failed: sh exited with code 3\n"
    record = record_of(path)
    assert (record.status, record.exit_code, record.reason) == (JobStatus.FAILED, 3, "sh exited with code 3")
    assert record.outputs == ()
    assert stored(analysis, [lfn]) == {}
    assert "$ touch" not in (path.parent / "w_fail.stdout.log").read_text()
    work = path.parent / "w_fail.work"
    assert sorted(p.name for p in work.iterdir()) == ["OUT_gamma_run1.txt", "gamma_run1.txt"]


@pytest.mark.parametrize(
    ("commands", "inputs", "reason", "exit_code"),
    [
        ([["true"]], (INPUT,), "output OUT_gamma_run1.txt was not produced", 0),
        ([["no-such-program-here"]], (INPUT,), "command not found: 'no-such-program-here'", None),
        ([["true"]], (f"{LFN_DIR}/gamma/missing.txt",), f"{LFN_DIR}/gamma/missing.txt", None),
    ],
    ids=["missing-output", "missing-program", "missing-input"],
)
def test_what_a_job_lacks_fails_it_with_the_reason(tmp_path, analysis, commands, inputs, reason, exit_code):
    job = spec("w_lacks", *commands, inputs=inputs)
    path = job_file(tmp_path, analysis, job)
    done = worker(path)
    assert done.returncode == 1, done.stderr
    record = record_of(path)
    assert record.status == JobStatus.FAILED and record.exit_code == exit_code
    assert reason in (record.reason or "")
    assert stored(analysis, [OUTPUT]) == {}


def test_a_local_job_needs_no_storage(tmp_path):
    folder = tmp_path / "models" / "energy"
    job = JobSpec(
        name="w_local",
        stage="model",
        unit="gamma",
        commands=(("sh", "-c", f"echo model > {folder}/model.pkl"),),
        outputs=(str(folder),),
        where="local",
    )
    path = job_file(tmp_path, tmp_path / "no-analysis-here", job)
    done = worker(path)
    assert done.returncode == 0, done.stderr
    assert record_of(path).status == JobStatus.DONE and record_of(path).outputs == ()
    assert (folder / "model.pkl").read_text() == "model\n"


def _bad_files(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name: (arguments, what the one-line message says)"""
    jobs = tmp_path / "bad"
    jobs.mkdir()
    good = JobFile(analysis="/an", spec=spec("w_bad", ["true"])).model_dump(mode="json")
    contents = {
        "not-json": ("{not json", "not a valid job file: not JSON"),
        "a-list": ("[1, 2]", "a JSON object is expected"),
        "version": (json.dumps({**good, "version": 2}), "job file version 2 is not supported"),
        "no-version": (
            json.dumps({k: v for k, v in good.items() if k != "version"}),
            "key 'version' is missing",
        ),
        "no-spec": (json.dumps({k: v for k, v in good.items() if k != "spec"}), "key 'spec': Field required"),
        "relative": (json.dumps({**good, "analysis": "an"}), "key 'analysis'"),
        "empty-argv": (
            json.dumps({**good, "spec": {**good["spec"], "commands": [[]]}}),
            "every command line names a program",
        ),
        "shell-string": (
            json.dumps({**good, "spec": {**good["spec"], "commands": ["true"]}}),
            "key 'spec.commands.0'",
        ),
    }
    cases = {}
    for name, (text, says) in contents.items():
        (jobs / f"{name}.job.json").write_text(text)
        cases[name] = ([str(jobs / f"{name}.job.json")], says)
    cases["a-folder"] = ([str(jobs)], "cannot read the job file: Is a directory")
    cases["missing"] = (
        [str(jobs / "missing.job.json")],
        "cannot read the job file: No such file or directory",
    )
    usage = "usage: python -m gridpipe.worker JOB_FILE [BATCH_FILE]"
    cases["no-argument"] = ([], usage)
    cases["three-arguments"] = ([str(jobs / "a"), str(jobs / "b"), str(jobs / "c")], usage)
    batch = jobs / "1.jobs"
    batch.write_text(f"w_bad.1\t{json.dumps(good)}\nw_bad.2\t{{not json\n")
    job = str(jobs / "w_bad.{}.job.json")
    cases["batch-missing"] = (
        [job.format(1), str(jobs / "2.jobs")],
        "2.jobs: cannot read the batch file: No such file or directory",
    )
    cases["batch-no-such-job"] = ([job.format(3), str(batch)], "the batch file holds no job 'w_bad.3'")
    cases["batch-bad-line"] = ([job.format(2), str(batch)], "not a valid job file: not JSON")
    return cases


def test_a_bad_or_missing_job_file_is_one_line_and_exit_2(tmp_path):
    for name, (args, says) in _bad_files(tmp_path).items():
        done = worker(*args)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("gridpipe.worker: error: "), name
        assert says in done.stderr, (name, done.stderr)
        if len(args) == 1:
            assert args[0] in done.stderr, name
    assert not list((tmp_path / "bad").glob("*.exit.json"))
    assert not list((tmp_path / "bad").glob("*.log"))


def test_a_job_of_a_batch_file_runs_under_the_name_its_job_file_would_have(tmp_path, analysis):
    """One batch file for many jobs (HTCondor writes one per submission): the worker reads the line keyed
    by the job file's name, which need not exist, and writes the job's files under that name."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    lines = [
        batch_line(
            key, JobFile(analysis=str(analysis), spec=spec(key, ["sh", "-c", f"echo {key}"], outputs=()))
        )
        for key in ("w_batch.1", "w_batch.10", "w_batch.11")
    ]
    batch = tmp_path / "11.jobs"
    batch.write_text("".join(lines))
    for key in ("w_batch.1", "w_batch.11"):
        path = jobs / f"{key}.job.json"
        done = worker(path, batch)
        assert (done.returncode, done.stderr) == (0, ""), key
        assert record_of(path).job == key and f"\n{key}\n" in (jobs / f"{key}.stdout.log").read_text()
    assert sorted(p.name for p in jobs.iterdir()) == [
        f"{key}.{suffix}"
        for key in ("w_batch.1", "w_batch.11")
        for suffix in ("exit.json", "stderr.log", "stdout.log")
    ]


def _started(path: Path, timeout: float = 60) -> int:
    """The payload's pid, once it has written it."""
    pid_file = path.parent / f"{path.name.removesuffix('.job.json')}.work" / "pid"
    deadline = time.monotonic() + timeout
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the payload did not start"
        time.sleep(0.05)
    return int(pid_file.read_text())


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_payload_killed_by_a_signal_fails_the_job(tmp_path, analysis):
    path = job_file(tmp_path, analysis, spec("w_sig", [PYTHON, "-c", WAIT_PID]))
    run = subprocess.Popen([PYTHON, "-m", "gridpipe.worker", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        os.kill(_started(path), signal.SIGKILL)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 1, err
    record = record_of(path)
    name = PurePosixPath(PYTHON).name
    assert (record.status, record.exit_code, record.reason) == (
        JobStatus.FAILED,
        -9,
        f"{name} was killed by signal 9",
    )


def test_a_worker_told_to_stop_kills_its_payload_and_records_it(tmp_path, analysis):
    path = job_file(tmp_path, analysis, spec("w_term", [PYTHON, "-c", WAIT_PID], ["touch", "never"]))
    run = subprocess.Popen([PYTHON, "-m", "gridpipe.worker", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        payload = _started(path)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGTERM, err
    record = record_of(path)
    assert (record.status, record.reason) == (JobStatus.KILLED, "the job worker got SIGTERM")
    assert err == "gridpipe.worker: job w_term killed: the job worker got SIGTERM\n"
    assert _gone(payload)
    assert "$ touch" not in (path.parent / "w_term.stdout.log").read_text()


def test_the_worker_imports_no_backend_nor_service(tmp_path, analysis):
    """The worker runs on batch nodes: it loads no engine, store or command line. (Reading grid.yaml loads
    the configured backend and storage plugins, whose settings models validate their sections.)"""
    path = job_file(tmp_path, analysis, spec("w_imports", [PYTHON, "-c", UPPER], outputs=()))
    probe = (
        "import sys; from gridpipe.worker.main import main; code = main([sys.argv[1]]); "
        "bad = sorted(m for m in sys.modules if m.startswith(('gridpipe.service', "
        "'gridpipe.cli', 'gridpipe.workflow', 'gridpipe.store', 'gridpipe.backends.local_executor'))); "
        "print(code, bad)"
    )
    done = subprocess.run([PYTHON, "-c", probe, str(path)], capture_output=True, text=True, check=False)
    assert done.stdout == "0 []\n", done.stderr


def test_records_round_trip_and_refuse_what_they_are_not(tmp_path):
    job = JobFile(analysis="/an", spec=spec("w_rt", ["true"]), work_dir="/scratch")
    write_job_file(tmp_path / "x.job.json", job)
    assert read_job_file(tmp_path / "x.job.json") == job
    assert exit_record_path(tmp_path / "x.job.json") == tmp_path / "x.exit.json"
    assert read_exit_record(tmp_path / "x.exit.json") is None
    record = ExitRecord.model_validate(
        {
            "job": "w_rt",
            "status": "done",
            "exit_code": 0,
            "reason": None,
            "started": "2026-01-01T00:00:00+00:00",
            "ended": "2026-01-01T00:00:01+00:00",
            "host": "node1",
        }
    )
    write_exit_record(tmp_path / "x.exit.json", record)
    assert read_exit_record(tmp_path / "x.exit.json") == record
    for change in ({"status": "running"}, {"started": "2026-01-01T00:00:00"}, {"outputs": [{"lfn": "/a"}]}):
        (tmp_path / "bad.exit.json").write_text(json.dumps({**record.model_dump(mode="json"), **change}))
        with pytest.raises(RecordError, match="not a valid exit record: key "):
            read_exit_record(tmp_path / "bad.exit.json")


def test_the_local_backend_ends_jobs_as_the_worker_does(tmp_path, analysis):
    """The same jobs through the local backend's runners and through `python -m gridpipe.worker`: the same
    status, exit code and reason (one code path), and the same registered output."""
    specs = [
        spec("same_ok", [PYTHON, "-c", UPPER], outputs=("/vo.test/user/w/worker/same/OUT_gamma_run1.txt",)),
        spec("same_exit", ["sh", "-c", "exit 5"]),
        spec("same_noprog", ["no-such-program-here"]),
        spec("same_noout", ["true"]),
        spec("same_killed", [PYTHON, "-c", "import os; os.kill(os.getpid(), 9)"]),
    ]
    an = Analysis.open(analysis)
    try:
        ids = an.backend.submit(specs)
        polled = poll_until_final(an.backend, list(ids.values()), step=0.05)
    finally:
        an.backend.close()
        an.close()
    by_local = {name: polled[i] for name, i in ids.items()}
    info = stored(analysis, [specs[0].outputs[0]])[specs[0].outputs[0]]
    for job in specs:
        path = job_file(tmp_path, analysis, job)
        worker(path)
        record = record_of(path)
        local = by_local[job.name]
        assert (local.status, local.exit_code, local.reason) == (
            record.status,
            record.exit_code,
            record.reason,
        )
    assert record_of(tmp_path / "jobs" / "same_ok.job.json").outputs == (
        OutputRecord(lfn=info.lfn, size=info.size, adler32=info.adler32),
    )


def test_a_work_folder_that_cannot_be_made_fails_the_job_with_a_record(tmp_path, analysis):
    (tmp_path / "a-file").write_text("not a folder\n")
    path = tmp_path / "jobs" / "w_nowork.job.json"
    write_job_file(
        path,
        JobFile(analysis=str(analysis), spec=spec("w_nowork", ["true"]), work_dir=str(tmp_path / "a-file")),
    )
    done = worker(path)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    record = record_of(path)
    assert record.status == JobStatus.FAILED
    assert (
        record.reason
        == f"cannot prepare the work folder {tmp_path}/a-file/gridpipe-w_nowork: Not a directory"
    )


def test_a_job_runs_in_the_work_dir_its_job_file_names(tmp_path, analysis):
    scratch = tmp_path / "scratch"
    lfn = "/vo.test/user/w/worker/scratch/OUT_gamma_run1.txt"
    job = spec("w_scratch", [PYTHON, "-c", UPPER], ["sh", "-c", "pwd > $OUT_PWD"], outputs=(lfn,))
    job = JobSpec(**{**job.__dict__, "env": {"OUT_PWD": str(tmp_path / "pwd.txt")}})
    path = tmp_path / "jobs" / "w_scratch.job.json"
    write_job_file(path, JobFile(analysis=str(analysis), spec=job, work_dir=str(scratch)))
    done = worker(path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pwd.txt").read_text() == f"{scratch}/gridpipe-w_scratch\n"
    assert list(scratch.iterdir()) == []  # done: its work folder is removed
    assert [o.lfn for o in record_of(path).outputs] == [lfn]
