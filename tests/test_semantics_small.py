"""The smaller things commands said wrong (issue 15): Ctrl-C in every command, help metavars, the mode and
comments of files gridpipe rewrites, --overwrite through a link, merge's report, a killed demo's leftovers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dl2_files import ROWS, write_dl2
from engine_helpers import gridpipe, make_analysis

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.api import Workflow
from gridpipe.cli.app import run_cli
from gridpipe.cli.root import app
from gridpipe.core.fsutil import atomic_write_text, held_lock
from gridpipe.service.context import Analysis
from gridpipe.service.demo import INPUTS_DONE, SCRATCH, DemoInputs, demo_lfn, prepare_demo

# ---- Ctrl-C: one line, exit 130, in every command ------------------------------------------------------


def _blocked_in_lock(pid: int, timeout: float = 30) -> None:
    """Wait until process `pid` sleeps in flock (the submission lock this test holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wchan = Path(f"/proc/{pid}/wchan").read_text(errors="replace")
        if "lock" in wchan or "flock" in wchan:
            return
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} never waited for the lock")


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--output_type", "TRAINING"],
        ["submit", "--stage", "produce", "--test", "--particle", "gamma"],
        ["resubmit", "--failed"],
    ],
)
def test_ctrl_c_outside_run_says_one_line_and_exits_130(tmp_path, args):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1})
    with held_lock(path / ".gridpipe" / "submit.lock", wait=True):
        proc = subprocess.Popen(
            [sys.executable, "-m", "gridpipe", *args, "-a", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _blocked_in_lock(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.splitlines() == ["gridpipe: error: interrupted"], err
    assert out == ""
    assert all(
        job["status"] == "planned"
        for job in json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    )


def test_ctrl_c_in_run_says_its_own_line_only(tmp_path):
    from engine_helpers import slow_workflow, start_run

    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1}, workflow=slow_workflow(tmp_path, 5))
    run = start_run(path)
    deadline = time.monotonic() + 30
    while not any(
        job["status"] == "running"
        for job in json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)["jobs"]
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 130
    assert "interrupted" not in err and (out + err).count("stopped") == 1


# ---- help: no Python types as metavars ------------------------------------------------------------------


def test_no_help_shows_a_python_type(capsys):
    commands = sorted(c.name or c.callback.__name__ for c in app.registered_commands)
    assert len(commands) > 10
    for name in commands:
        assert run_cli([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert "list[" not in text and "<list" not in text, (name, text)
    run_cli(["submit", "--help"])
    assert "--particle PARTICLE" in capsys.readouterr().out
    run_cli(["kill", "--help"])
    assert "[JOB]..." in capsys.readouterr().out


# ---- files gridpipe rewrites keep their mode; Workflow.save keeps the header ------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o664, 0o640, 0o755])
def test_rewritten_files_keep_their_mode(tmp_path, mode):
    file = tmp_path / "f.yaml"
    file.write_text("a: 1\n")
    file.chmod(mode)
    atomic_write_text(file, "a: 2\n")
    assert stat.S_IMODE(file.stat().st_mode) == mode and file.read_text() == "a: 2\n"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_new_files_get_the_umask_not_0600(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.txt", "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("mode", [0o644, 0o664])
def test_workflow_save_keeps_mode_and_leading_comments(tmp_path, mode):
    path = make_analysis(tmp_path, {"gamma": 1, "proton": 1})
    workflow = path / "configs" / "workflow.yaml"
    header = "# my analysis: do not run on Fridays\n#\n# owner: me\n\n"
    workflow.write_text(header + workflow.read_text())
    workflow.chmod(mode)
    with Workflow.load(path) as wf:
        wf.save()
    text = workflow.read_text()
    assert text.startswith(header.rstrip("\n") + "\n")
    assert stat.S_IMODE(workflow.stat().st_mode) == mode
    with Workflow.load(path) as wf:  # and it still loads, stages intact
        assert [s.name for s in wf.stages] == ["produce", "summarise"]


# ---- --overwrite through a symbolic link ----------------------------------------------------------------


def test_overwrite_through_a_symbolic_link_is_refused(tmp_path):
    real = create_analysis(CreateRequest(name="real", analyses_dir=tmp_path / "one")).path
    before = {p: p.read_bytes() for p in (real / "configs").iterdir()}
    (tmp_path / "two").mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    cases = {"alias": real, "plain": other, "dangling": tmp_path / "gone"}
    for name, target in cases.items():
        (tmp_path / "two" / name).symlink_to(target)
        result = gridpipe("create-analysis", name, "--analyses-dir", str(tmp_path / "two"), "--overwrite")
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert "symbolic link" in result.stderr or "not a gridpipe analysis" in result.stderr
        assert (tmp_path / "two" / name).is_symlink()
    assert {p: p.read_bytes() for p in (real / "configs").iterdir()} == before  # never renamed
    assert "real" in (real / "analysis_metadata.yaml").read_text()


# ---- merge says what it merged -----------------------------------------------------------------------------


def test_merge_reports_the_files_it_merged_not_fetched_0(tmp_path):
    path = create_analysis(CreateRequest(name="mg", analyses_dir=tmp_path)).path
    local = path / "data" / "DL2" / "gamma"
    local.mkdir(parents=True, exist_ok=True)
    for run in (1, 2, 3):
        write_dl2(local / f"DL2_gamma_tail_run{run}.h5", run)
    result = gridpipe("merge", "--data-type", "DL2", "--particle", "gamma", "-a", str(path))
    assert result.returncode == 0, result.stderr
    assert "fetched" not in result.stdout
    assert "merged 3 file(s) into" in result.stdout and f"({3 * ROWS} rows)" in result.stdout
    data = json.loads(
        gridpipe("merge", "--data-type", "DL2", "--particle", "gamma", "--json", "-a", str(path)).stdout
    )
    assert data[0]["merged_inputs"] == 3


# ---- a demo killed while making its inputs leaves nothing behind ------------------------------------------


SMALL = DemoInputs(training_files=2, perf_files=1, events=50, n_file_per_job=1)


def test_demo_inputs_clean_what_a_killed_maker_left(tmp_path):
    path, _ = prepare_demo(tmp_path, sizes=SMALL)
    (path / INPUTS_DONE).unlink()  # as if killed before the end
    with Analysis.open(path) as an:
        root = an.storage.root
    lfn = demo_lfn("gamma", 1000)
    stored = root / lfn.lstrip("/")
    planted = [
        stored.parent / f".{stored.name}.1a2b3c4d.part",
        stored.parent / ".gamma_20deg_0deg_run9999.h5.deadbeef.part",
        path / "data" / "simtel" / ".gamma_energy.list.abc123.tmp",
        path / SCRATCH / "gamma_1000.h5",
    ]
    for file in planted:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"half")
    prepare_demo(tmp_path, sizes=SMALL)
    assert not any(f.exists() for f in planted)
    assert not (path / SCRATCH).exists()
    assert (path / INPUTS_DONE).is_file() and stored.is_file()


def test_a_demo_killed_while_making_inputs_is_completed_cleanly(tmp_path):
    script = (
        "import sys; from pathlib import Path; from gridpipe.service.demo import prepare_demo, DemoInputs;"
        "prepare_demo(Path(sys.argv[1]), sizes=DemoInputs(training_files=4, perf_files=2, events=20000))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    path = tmp_path / "gridpipe_demo"
    deadline = time.monotonic() + 60
    while not any((path / SCRATCH).glob("*")) if (path / SCRATCH).exists() else True:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (path / INPUTS_DONE).exists()
    prepare_demo(tmp_path, sizes=DemoInputs(training_files=4, perf_files=2, events=20000))
    left = [p for p in path.rglob("*") if p.name.endswith((".part", ".tmp"))]
    assert left == [] and not (path / SCRATCH).exists()
    with Analysis.open(path) as an:
        lists = [path / rel for rel in an.grid.inputs.values()]
    assert all(lst.read_text().count(".simtel.h5") in (2, 4) for lst in lists)


def test_workflow_save_after_add_keeps_every_comment_of_the_file(tmp_path):
    from gridpipe.analysis.stage import Stage

    path = make_analysis(tmp_path, {"gamma": 1, "proton": 1})
    workflow = path / "configs" / "workflow.yaml"
    original = workflow.read_text()
    marked = original.replace(
        "  - name: summarise", "  # the summary, built on this machine\n  - name: summarise"
    )
    assert marked != original
    workflow.write_text(marked)
    with Workflow.load(path) as wf:
        wf.add(
            Stage(
                name="extra",
                kind="local",
                needs=["summarise"],
                units=["all"],
                outdir="results/extra",
                job_name="{analysis}_EXTRA",
                command=["true"],
            )
        )
        wf.save()
    text = workflow.read_text()
    assert text.startswith(marked.rstrip("\n"))  # the file's own text, comments included, untouched
    assert "# the summary, built on this machine" in text
    with Workflow.load(path) as wf:
        assert [s.name for s in wf.stages] == ["produce", "summarise", "extra"]
        wf.save()  # nothing changed: the text stays as it is
    assert workflow.read_text() == text
