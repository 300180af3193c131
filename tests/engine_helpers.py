"""Build small real analyses for engine tests: a custom workflow and input files in the local storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.backends.contract import Backend
from gridpipe.backends.local_queue import LocalQueue
from gridpipe.core.states import FINAL_STATES
from gridpipe.service.context import Analysis

DATA = Path(__file__).parent / "data"
LFN_DIR = "/vo.test/MC/engine"


def make_analysis(
    tmp: Path,
    n_files: dict[str, int],
    *,
    name: str = "eng",
    n_file_per_job: int = 2,
    workflow: Path = DATA / "touch_workflow.yaml",
    max_workers: int = 2,
) -> Path:
    """An analysis whose lists hold `n_files[particle]` real input files (in the local storage)."""
    path = create_analysis(
        CreateRequest(name=name, analyses_dir=tmp, workflow=workflow, n_file_per_job=n_file_per_job)
    ).path
    grid = path / "configs" / "grid.yaml"
    grid.write_text(grid.read_text().replace("max_workers: 0", f"max_workers: {max_workers}"))
    an = Analysis.open(path)
    try:
        scratch = path / ".gridpipe" / "scratch"
        scratch.mkdir()
        for particle, count in n_files.items():
            lfns = []
            for run in range(1, count + 1):
                src = scratch / f"{particle}{run}"
                src.write_text(f"{particle} run {run}\n")
                lfn = f"{LFN_DIR}/{particle}/{particle}_run{run}.txt"
                an.storage.put(src, lfn)
                lfns.append(lfn)
            (path / an.grid.inputs[f"{particle}_in"]).write_text("\n".join(lfns) + "\n")
    finally:
        an.close()
    return path


_NOOP = """version: 1
tree:
  directories: [data/simtel, logs]
  files: [{{path: configs/grid.yaml, template: configs/grid.yaml.j2}}]
inputs: {{gamma_in: data/simtel/gamma_in.list}}
stages:
  - name: noop
    units: [gamma]
    input_list: "{{particle}}_in"
    data_type: NOOP
    job_name: "{{analysis}}_NOOP_{{particle}}_{{token}}{suffix}"
    output: "NOOP_{{particle}}{suffix}_{{token}}.txt"
    n_file_per_job: 1
{sweep}    command: ["touch {{output}}"]
"""


def noop_workflow(path: Path, *, sweep: int = 0) -> Path:
    """Write the benchmarks' no-op workflow to `path`: one grid stage `noop` over `gamma`, one input file
    per job, each job touching its output; `sweep` > 0 sweeps it over `cut` = 0 .. sweep-1 (one unit each)."""
    if sweep:
        text = _NOOP.format(
            suffix="_{cut}", sweep=f"    sweep: {{name: cut, values: {list(range(sweep))}}}\n"
        )
    else:
        text = _NOOP.format(suffix="", sweep="")
    path.write_text(text)
    return path


def gridpipe(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "gridpipe", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def wait_idle(path: Path, timeout: float = 60) -> LocalQueue:
    """Wait until the local backend has no queued or running job."""
    queue = LocalQueue(path / ".gridpipe" / "local")
    deadline = time.monotonic() + timeout
    while queue.active_count():
        if time.monotonic() > deadline:
            queue.close()
            raise TimeoutError("local jobs did not finish")
        time.sleep(0.1)
    # The caller closes it (Python 3.13 warns of an unclosed connection, and warnings are errors).
    return queue


def wait_executor_gone(path: Path, timeout: float = 30) -> None:
    """Wait until the analysis's local executor has exited (it keeps the environment it was started with)."""
    from gridpipe.core.fsutil import held_lock

    lock = path / ".gridpipe" / "local" / "executor.lock"
    deadline = time.monotonic() + timeout
    while True:
        with held_lock(lock, wait=False) as fd:
            if fd is not None:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the local executor did not exit")
        time.sleep(0.1)


def slow_workflow(tmp: Path, seconds: float) -> Path:
    """The engine-test workflow with grid jobs that first sleep `seconds`."""
    source = (DATA / "touch_workflow.yaml").read_text()
    marker = "{python} -c 'import sys,os;"
    target = tmp / f"slow_{seconds}.yaml"
    target.write_text(source.replace(marker, f"{{python}} -c 'import sys,os,time; time.sleep({seconds});", 1))
    return target


_RUNS: list[subprocess.Popen[str]] = []


def start_run(path: Path, *options: str) -> subprocess.Popen[str]:
    """`gridpipe run` on the analysis in the background (output captured), polling every 50 ms."""
    run = subprocess.Popen(
        [sys.executable, "-m", "gridpipe", "run", "-a", str(path), "--poll-interval", "0.05", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _RUNS.append(run)
    return run


def reap_runs() -> None:
    """Stop (Ctrl-C, then kill) and reap every run `start_run` began: a failed test leaves no process behind."""
    while _RUNS:
        run = _RUNS.pop()
        if run.poll() is None:
            run.send_signal(signal.SIGINT)
        try:
            run.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()


def run_through_outage(
    run: subprocess.Popen[str],
    started: Callable[[], bool],
    stop: Callable[[], None],
    start: Callable[[], None],
    outage: float,
    timeout: float,
) -> str:
    """Drive a `gridpipe run` (stdout piped, text) through an outage of its batch system: once `started()`,
    `stop()` the service, check after `outage` seconds that the run is still waiting, `start()` it again,
    and return the run's output once it ends (it is killed, and its streams closed, on any failure)."""
    try:
        deadline = time.monotonic() + 120
        while not started():
            assert time.monotonic() < deadline and run.poll() is None, "the run never submitted"
            time.sleep(0.05)
        stop()
        time.sleep(outage)
        assert run.poll() is None, run.stdout.read() if run.stdout else ""  # waiting the outage out
        start()
        out, _ = run.communicate(timeout=timeout)
        return out
    finally:
        kill_and_close(run)


def kill_and_close(run: subprocess.Popen[str]) -> None:
    """Kill the process if it still runs, reap it and close its pipes (no ResourceWarning later)."""
    if run.poll() is None:
        run.kill()
    run.wait()
    for stream in (run.stdin, run.stdout, run.stderr):
        if stream is not None:
            stream.close()


def use_backend(path: Path, name: str, section: str = "") -> None:
    """Switch an analysis made by make_analysis to backend `name`; `section`: lines of `backend.<name>`."""
    grid = path / "configs" / "grid.yaml"
    text = grid.read_text().replace('name: "local"\n  # Most', f'name: "{name}"\n  # Most', 1)
    if section:
        text = text.replace("\nstorage:", f"  {name}:\n" + section + "\nstorage:", 1)
    grid.write_text(text)


def poll_until_final(backend: Backend, ids: Sequence[str], timeout: float = 60, step: float = 0.2) -> dict:
    """Poll the backend's jobs `ids` until every one is in a final state; {id: BackendStatus}."""
    deadline = time.monotonic() + timeout
    while True:
        polled = {s.backend_id: s for s in backend.poll(ids)}
        if all(i in polled and polled[i].status in FINAL_STATES for i in ids):
            return polled
        assert time.monotonic() < deadline, polled
        time.sleep(step)


def gamma_touch_analysis(tmp: Path, n: int, backend: str, section: str = "") -> Path:
    """An analysis of `n` one-file gamma jobs that each touch their output, on `backend` (the benchmarks')."""
    tmp.mkdir(parents=True, exist_ok=True)
    workflow = tmp / "workflow.yaml"
    workflow.write_text(
        (DATA / "touch_workflow.yaml").read_text().replace("units: [gamma, proton]", "units: [gamma]")
    )
    path = make_analysis(tmp, {"gamma": n}, n_file_per_job=1, workflow=workflow)
    use_backend(path, backend, section)
    return path
