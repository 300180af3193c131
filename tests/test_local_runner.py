"""The local backend's runners on real processes: deaths are noticed, logs and failed work folders kept."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from engine_helpers import gridpipe, make_analysis, slow_workflow, start_run, wait_executor_gone, wait_idle

from gridpipe.backends.local_queue import LocalQueue
from gridpipe.core.states import JobStatus
from gridpipe.service.context import Analysis


def _queue(path: Path) -> LocalQueue:
    return LocalQueue(path / ".gridpipe" / "local")


def _wait_running(path: Path, timeout: float = 60) -> tuple[int, int, int]:
    """(job id, runner pid, payload pid) of the first job once its payload runs."""
    queue = _queue(path)
    deadline = time.monotonic() + timeout
    try:
        while not (running := queue.running()) or not _payloads(path, running[0].id):
            assert time.monotonic() < deadline, "no payload started"
            time.sleep(0.05)
    finally:
        queue.close()
    job_id = running[0].id
    # `closing`: a `with` block alone commits and does not close.
    with closing(sqlite3.connect(path / ".gridpipe" / "local" / "queue.db")) as db:
        (runner_pid,) = db.execute("SELECT executor_pid FROM ledger WHERE job_id = ?", (job_id,)).fetchone()
    (payload,) = _payloads(path, job_id)
    return job_id, runner_pid, payload


def _jobs(path: Path) -> list:
    an = Analysis.open(path)
    try:
        return an.store.jobs()
    finally:
        an.close()


def _payloads(path: Path, job_id: int) -> list[int]:
    from gridpipe.backends.local_executor import _orphans

    return _orphans(path / ".gridpipe" / "local", {job_id})


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_runner_killed_mid_job_fails_it_as_lost_and_run_retries_it(tmp_path):
    path = make_analysis(
        tmp_path, {"gamma": 1, "proton": 1}, workflow=slow_workflow(tmp_path, 2), n_file_per_job=1
    )
    run = start_run(path)
    job_id, runner_pid, payload = _wait_running(path)
    os.kill(runner_pid, signal.SIGKILL)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    assert "1 failed" in out and "retrying 1 failed job" in out
    queue = _queue(path)
    first = queue.rows([str(job_id)])[0]
    assert (
        first.status == "failed"
        and first.reason == f"lost: the local runner process {runner_pid} stopped while the job ran"
    )
    assert "$ " in queue.logs(job_id)[0]  # what the slot's log held is kept
    starts = [name for _, name in queue.ledger()]
    queue.close()
    assert sorted(starts) == sorted(["eng_OUT_gamma_run1", "eng_OUT_proton_run1", "eng_SUMMARY", first.name])
    assert not _alive(payload)
    jobs = {job.name: job for job in _jobs(path)}
    assert {job.status for job in jobs.values()} == {JobStatus.DONE}
    assert jobs[first.name].attempts == 2


def test_a_dead_executor_is_noticed_by_the_next_status(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1}, workflow=slow_workflow(tmp_path, 60), n_file_per_job=1)
    other = make_analysis(  # its job has the same id in its own queue: it must not be taken for an orphan
        tmp_path / "other", {"gamma": 1}, workflow=slow_workflow(tmp_path, 60), n_file_per_job=1
    )
    for analysis in (path, other):
        assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(analysis)).returncode == 0
    _, _, other_payload = _wait_running(other)
    _, runner_pid, payload = _wait_running(path)
    os.killpg(_parent(runner_pid), signal.SIGKILL)  # the executor and its runners; the payload survives
    assert _alive(payload)
    status = gridpipe("status", "--json", "-a", str(path))  # sees a running job and no executor
    assert status.returncode == 0, status.stderr
    wait_idle(path).close()
    jobs = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    assert jobs[0]["status"] == "failed"
    assert jobs[0]["reason"] == "lost: the local executor stopped while the job ran"
    assert not _alive(payload)
    assert _alive(other_payload)
    assert gridpipe("kill", "--all", "-a", str(other)).returncode == 0


LOUD = """version: 1
tree:
  directories: [data/simtel, logs]
  files: [{path: configs/grid.yaml, template: configs/grid.yaml.j2}]
inputs: {gamma_in: data/simtel/gamma_in.list}
stages:
  - name: loud
    units: [gamma]
    input_list: "{particle}_in"
    data_type: LOUD
    job_name: "{analysis}_LOUD_{particle}_{token}"
    output: "LOUD_{particle}_{token}.txt"
    command: ["{python} -c 'import os,sys; n=int(os.environ[\\"N\\"]); open(sys.argv[1], \\"w\\"); sys.stdout.write(\\"x\\" * n); sys.stderr.write(\\"e\\"); sys.exit(int(os.environ.get(\\"CODE\\", \\"0\\")))' {output}"]
"""


def test_logs_small_and_large_and_a_failed_job_keeps_its_work_folder(tmp_path):
    workflow = tmp_path / "loud.yaml"
    workflow.write_text(LOUD)
    path = make_analysis(tmp_path, {"gamma": 2}, workflow=workflow, n_file_per_job=1)
    big = 3 * (1 << 20) // 2  # above what the queue keeps inline: moved to a file
    for n, code in ((10, "0"), (big, "4")):
        result = gridpipe(
            "submit", "--stage", "loud", "--test", "-a", str(path), env={"N": str(n), "CODE": code}
        )
        assert result.returncode == 0, result.stderr
        wait_idle(path).close()
        wait_executor_gone(path)  # payloads get the environment of the executor that runs them
    first, second = _jobs(path)
    assert gridpipe("status", "-a", str(path)).returncode == 0
    small = gridpipe("logs", first.name, "-a", str(path))
    assert small.returncode == 0 and "x" * 10 in small.stdout and "$ " in small.stdout
    large = gridpipe("logs", second.name, "-a", str(path))
    assert large.returncode == 0 and "x" * big in large.stdout
    queue = _queue(path)
    rows = queue.by_names([first.name, second.name])
    queue.close()
    ids = {row.name: row.id for row in rows}
    jobs_dir = path / ".gridpipe" / "local" / "jobs"
    # the job without output failed; its folder (staged input included) is kept for inspection
    assert sorted(p.name for p in (jobs_dir / str(ids[second.name]) / "work").iterdir()) == [
        "LOUD_gamma_run2.txt",
        "gamma_run2.txt",
    ]
    assert not (jobs_dir / str(ids[first.name])).exists()
    # every slot's work folder is empty again
    slots = path / ".gridpipe" / "local" / "slots"
    assert all(not any((slot / "work").iterdir()) for slot in slots.iterdir())


def test_wait_returns_once_the_queue_has_drained(tmp_path):
    import threading

    path = make_analysis(tmp_path, {"gamma": 3}, n_file_per_job=1)
    an = Analysis.open(path)
    try:
        assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
        stop = threading.Event()
        started = time.monotonic()
        an.backend.wait(0, 120, stop)  # returns when nothing is queued or running, not after 120 s
        assert time.monotonic() - started < 100
        assert an.backend.queue.active_count() == 0
        stop.set()
        an.backend.wait(-1, 120, stop)  # a set stop event ends the wait at once
    finally:
        an.close()


def test_runners_that_keep_dying_fail_the_queued_jobs_instead_of_looping(tmp_path):
    from gridpipe.backends.local_executor import MAX_RUNNER_REPLACEMENTS, RUNNERS_DIE

    path = make_analysis(tmp_path, {"gamma": 3}, n_file_per_job=1)
    local = path / ".gridpipe" / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "slots").write_text("a file where the runners' folders belong: every runner dies starting\n")
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path)).returncode == 0
    wait_idle(path).close()
    wait_executor_gone(path)
    jobs = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    assert {job["status"] for job in jobs} == {"failed"}
    assert {job["reason"] for job in jobs} == {RUNNERS_DIE}
    deaths = (local / "executor.log").read_text().count(" died (exit ")
    assert 2 <= deaths <= 2 + MAX_RUNNER_REPLACEMENTS


def _executors(path: Path) -> list[int]:
    """Executors of the analysis at `path`: processes running the executor that lead their own session
    (its runners are forked from it, so they share its command line but not its process id as session)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            session = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if b"gridpipe.backends.local_executor" in argv and str(path).encode() in argv:
            if str(session) == entry.name:
                found.append(session)
    return found


def test_an_executor_holds_the_lock_from_its_start_so_no_second_one_is_started(tmp_path):
    from gridpipe.core.fsutil import held_lock

    path = make_analysis(tmp_path, {"gamma": 1}, n_file_per_job=1)
    an = Analysis.open(path)
    try:
        for _ in range(5):  # `run` and `status` call this on every poll, even while an executor starts up
            an.backend.ensure_running()
        with held_lock(path / ".gridpipe" / "local" / "executor.lock", wait=False) as fd:
            assert fd is None  # handed over at once
        seen: set[int] = set()
        for _ in range(25):  # a process's command line can read empty for a moment after its exec
            seen.update(_executors(path))
            time.sleep(0.02)
        assert len(seen) == 1
    finally:
        an.close()
    wait_executor_gone(path)
    deadline = time.monotonic() + 30
    while _executors(path):
        assert time.monotonic() < deadline, "the idle executor did not exit"
        time.sleep(0.05)


def test_a_kill_requested_before_a_job_ends_is_what_the_queue_records(tmp_path):
    from gridpipe.backends.local_queue import Outcome
    from gridpipe.core.models import JobSpec

    queue = LocalQueue(tmp_path)
    try:
        ids = queue.add(
            [JobSpec(name=n, stage="s", unit="u", commands=(("true",),)) for n in ("early", "late")]
        )
        claimed = queue.claim(2, os.getpid())
        assert [spec.name for _, spec in claimed] == ["early", "late"]
        # `early` ends before the kill reaches the backend: it stays done
        queue.finish([Outcome(int(ids["early"]), "done", 0, None)])
        queue.request_cancel([ids["early"], ids["late"]])
        # `late` ends after the kill was asked for, before its runner noticed: killed, as `kill` reported
        queue.finish([Outcome(int(ids["late"]), "done", 0, None)])
        rows = {row.name: row for row in queue.rows([ids["early"], ids["late"]])}
        assert (rows["early"].status, rows["early"].reason) == ("done", None)
        assert (rows["late"].status, rows["late"].reason) == ("killed", "killed by the user")
    finally:
        queue.close()


def _queue_directly(path: Path, commands: list[tuple[str, ...]]) -> list[int]:
    """Queue local jobs running `commands` (one each, in this order) through the analysis's local backend,
    which starts its executor; their queue ids."""
    from gridpipe.core.models import JobSpec

    an = Analysis.open(path)
    try:
        specs = [
            JobSpec(name=f"job{i}", stage="s", unit="u", commands=(argv,), where="local")
            for i, argv in enumerate(commands)
        ]
        ids = an.backend.submit(specs)
    finally:
        an.close()
    return [int(ids[spec.name]) for spec in specs]


def _status(path: Path, ids: list[int]) -> dict[int, str]:
    queue = _queue(path)
    try:
        return {row.id: row.status for row in queue.rows([str(i) for i in ids])}
    finally:
        queue.close()


def test_a_runner_killed_mid_batch_gives_back_the_jobs_it_had_not_started(tmp_path):
    """One runner: after a short job it claims the next several at once; killed while the second of those
    runs, that one is lost and the ones after it go back to the queue unstarted, and run once."""
    path = make_analysis(tmp_path, {"gamma": 1}, max_workers=1)
    first, slow, *after = _queue_directly(path, [("true",), ("sleep", "60"), ("true",), ("true",), ("true",)])
    job_id, runner_pid, payload = _wait_running(path)
    assert job_id == slow
    assert set(_status(path, after).values()) == {"running"}  # claimed with it
    os.kill(runner_pid, signal.SIGKILL)
    queue = wait_idle(path)
    try:
        rows = {row.id: row for row in queue.rows([str(i) for i in (first, slow, *after)])}
        starts = [job for job, _ in queue.ledger()]
    finally:
        queue.close()
    assert rows[slow].status == "failed" and rows[slow].reason.startswith("lost: the local runner process")
    assert {rows[i].status for i in (first, *after)} == {"done"}
    assert sorted(starts) == [first, slow, *after]  # each payload started once
    assert not _alive(payload)


def test_jobs_claimed_with_a_long_one_go_back_to_the_queue_while_it_runs(tmp_path):
    """The runner that claimed a short batch does not keep its other jobs waiting behind a long one: they
    are queued again, without a ledger line, while the long one runs, and then run once."""
    path = make_analysis(tmp_path, {"gamma": 1}, max_workers=1)
    first, slow, *after = _queue_directly(path, [("true",), ("sleep", "60"), ("true",), ("true",)])
    job_id, _, _ = _wait_running(path)
    assert job_id == slow
    deadline = time.monotonic() + 5
    while set(_status(path, after).values()) != {"queued"}:
        assert time.monotonic() < deadline, _status(path, after)
        time.sleep(0.05)
    queue = _queue(path)
    try:
        assert not {job for job, _ in queue.ledger()} & set(after)
        queue.request_cancel([str(slow)])  # the one runner is free again
    finally:
        queue.close()
    queue = wait_idle(path)
    try:
        rows = {row.id: row.status for row in queue.rows([str(i) for i in (first, slow, *after)])}
        starts = sorted(job for job, _ in queue.ledger())
    finally:
        queue.close()
    assert rows == {first: "done", slow: "killed", **dict.fromkeys(after, "done")}
    assert starts == [first, slow, *after]


def test_a_job_killed_while_claimed_never_starts(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1}, max_workers=1)
    marker = tmp_path / "ran"
    first, slow, doomed = _queue_directly(path, [("true",), ("sleep", "1"), ("touch", str(marker))])
    _wait_running(path)
    queue = _queue(path)
    try:
        queue.request_cancel([str(doomed)])
    finally:
        queue.close()
    queue = wait_idle(path)
    try:
        rows = {row.id: row for row in queue.rows([str(i) for i in (first, slow, doomed)])}
        starts = [job for job, _ in queue.ledger()]
    finally:
        queue.close()
    assert (rows[doomed].status, rows[doomed].reason) == ("killed", "killed before it started")
    assert (rows[first].status, rows[slow].status) == ("done", "done")
    assert sorted(starts) == [first, slow]
    assert not marker.exists()


def test_recovery_requeues_what_a_dead_runner_claimed_but_never_started(tmp_path):
    """The queue and slot files as a runner leaves them when it dies after starting the first job of a
    batch of three: that one is lost, the other two are queued again without their ledger lines."""
    from gridpipe.backends.local_executor import recover_lost
    from gridpipe.backends.local_slot import Slot
    from gridpipe.core.models import JobSpec

    queue = LocalQueue(tmp_path)
    slot = Slot(tmp_path, 0)
    try:
        queue.add([JobSpec(name=f"j{i}", stage="s", unit="u", commands=(("true",),)) for i in range(4)])
        runner = os.getpid()
        batch = [job_id for job_id, _ in queue.finish_and_claim([], 3, runner, 0)]
        slot.mark_started(0)
        slot.mark_started(batch[0])
        recover_lost(queue, tmp_path, runner)
        rows = {row.id: row for row in queue.rows([str(i) for i in batch])}
        assert rows[batch[0]].status == "failed" and rows[batch[0]].reason.startswith("lost:")
        assert [rows[i].status for i in batch[1:]] == ["queued", "queued"]
        assert [rows[i].slot for i in batch[1:]] == [None, None]
        assert [job for job, _ in queue.ledger()] == [batch[0]]
        # claimed again, by whichever runner comes next, in order
        assert [job_id for job_id, _ in queue.claim(8, runner)] == [*batch[1:], batch[-1] + 1]
    finally:
        slot.close()
        queue.close()


def test_recovery_fails_every_held_job_when_the_slot_mark_is_unreadable(tmp_path):
    """Without a readable mark nothing tells which jobs started: all are failed as lost, none runs twice."""
    from gridpipe.backends.local_executor import recover_lost
    from gridpipe.backends.local_slot import STARTED_MARK, slot_dir
    from gridpipe.core.models import JobSpec

    queue = LocalQueue(tmp_path)
    try:
        queue.add([JobSpec(name=f"j{i}", stage="s", unit="u", commands=(("true",),)) for i in range(2)])
        batch = [job_id for job_id, _ in queue.finish_and_claim([], 2, os.getpid(), 0)]
        slot_dir(tmp_path, 0).mkdir(parents=True)
        (slot_dir(tmp_path, 0) / STARTED_MARK).write_text("garbled")
        recover_lost(queue, tmp_path, os.getpid())
        assert {row.status for row in queue.rows([str(i) for i in batch])} == {"failed"}
    finally:
        queue.close()


def test_run_starts_the_executor_before_validating_and_an_invalid_config_is_one_line_everywhere(tmp_path):
    """`run` starts the local executor first thing (the backend's name read as grid.yaml gives it); when
    validating the configs then fails, the command says so, and so does the executor's log, in one line."""
    path = make_analysis(tmp_path, {"gamma": 1})
    grid = path / "configs" / "grid.yaml"
    grid.write_text(grid.read_text().replace("max_attempts: 3", "max_attempts: lots"))
    result = gridpipe("run", "-a", str(path))
    assert result.returncode != 0
    assert "max_attempts" in result.stderr and "Traceback" not in result.stderr
    wait_executor_gone(path)
    log = (path / ".gridpipe" / "local" / "executor.log").read_text()
    assert "cannot run the analysis's jobs" in log and "max_attempts" in log
    assert "Traceback" not in log and len(log.splitlines()) == 1
