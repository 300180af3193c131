"""DIRAC jobs check their outputs as the job worker does, with the same program text.

A DIRAC node has no gridpipe: the job wrapper runs each payload's output check as `python3 -c PROGRAM`
(gridpipe/payloads/h5check.py) after the commands and before DIRAC uploads anything, and a failed check
fails the job. Here the same real HDF5 files are judged by the worker's in-process check and by the node
command (PyTables, h5py, neither); then jobs go through a real DiracX server on loopback, the wrapper runs
for real on this machine playing the node, and the reason gridpipe reads back names the output and why.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dl2_files import h5_with_tables

from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus
from gridpipe.payloads.builtin import ProtopipePayload
from gridpipe.payloads.ctapipe.payload import EVENT_NODES, CtapipePayload

_ANALYSES = itertools.count()
HOSTILE = "-n$(touch$IFS$GP_PWNED)`touch$IFS$GP_PWNED`'q'&|<>*!~^.h5"
"""An output name that DIRAC's JDL can carry (no spaces, quotes, commas, braces) and a shell would run."""


def _files(folder: Path) -> dict[str, Path]:
    """Real files: good, partial, truncated and garbage event files; protopipe outputs by status."""
    folder.mkdir(parents=True, exist_ok=True)
    good = h5_with_tables(folder / "event_good.h5", EVENT_NODES)
    truncated = folder / "event_truncated.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    garbage = folder / "event_garbage.h5"
    garbage.write_bytes(b"this is no HDF5 file\n" * 100)
    import h5py

    with h5py.File(
        folder / "proto_h5py.h5", "w"
    ) as h5:  # a str attribute as h5py writes it (variable length)
        h5.create_dataset("table", data=np.zeros(3))
        h5.attrs["status"] = "complete"
    return {
        "event_good.h5": good,
        "event_partial.h5": h5_with_tables(folder / "event_partial.h5", EVENT_NODES[:1]),
        "event_truncated.h5": truncated,
        "event_garbage.h5": garbage,
        "proto_complete.h5": h5_with_tables(folder / "proto_complete.h5", ["/gamma/table"], "complete"),
        "proto_running.h5": h5_with_tables(folder / "proto_running.h5", ["/gamma/table"], "running"),
        "proto_none.h5": h5_with_tables(folder / "proto_none.h5", ["/gamma/table"]),
        "proto_h5py.h5": folder / "proto_h5py.h5",
    }


def _blocker(folder: Path, *modules: str) -> str:
    """A PYTHONPATH entry under which importing these modules fails, as on a node without them."""
    for module in modules:
        (folder / module).mkdir(parents=True, exist_ok=True)
        (folder / module / "__init__.py").write_text(f"raise ImportError('no {module} on this node')\n")
    return str(folder)


def node_env(**extra: str) -> dict[str, str]:
    """The environment of the node: this venv's python3 and tools first on PATH (the payload's environment)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def _same_words(text: str | None) -> str | None:
    """A problem without the library's own exception text (PyTables and h5py word a bad file differently)."""
    return None if text is None else re.sub(r"(is not a readable HDF5 file) \(.*\)$", r"\1", text)


@pytest.mark.parametrize("reader", ["tables", "h5py"])
def test_the_node_command_judges_real_files_as_the_worker_does(tmp_path, reader):
    files = _files(tmp_path / "files")
    env = node_env()
    if reader == "h5py":
        env["PYTHONPATH"] = _blocker(tmp_path / "block", "tables")
    verdicts = {}
    for payload in (CtapipePayload(), ProtopipePayload()):
        for name, path in files.items():
            worker = payload.output_problem(path)
            check = payload.output_check(name)
            assert check is not None
            run = subprocess.run(
                check.command(name), cwd=path.parent, env=env, capture_output=True, text=True, timeout=120
            )
            assert run.stderr == "", run.stderr
            node = run.stdout.strip() or None
            assert (run.returncode == 0) == (node is None), run
            assert _same_words(node) == _same_words(worker), (payload.name, name, reader)
            verdicts[payload.name, name] = worker is None
    fine = {(payload, name) for (payload, name), ok in verdicts.items() if ok}
    assert fine == {
        ("ctapipe", "event_good.h5"),
        ("protopipe", "proto_complete.h5"),
        ("protopipe", "proto_h5py.h5"),
    }


def test_a_node_without_tables_or_h5py_fails_the_check_with_a_reason(tmp_path):
    files = _files(tmp_path / "files")
    env = node_env(PYTHONPATH=_blocker(tmp_path / "block", "tables", "h5py"))
    check = ProtopipePayload().output_check("proto_complete.h5")
    assert check is not None
    run = subprocess.run(
        check.command("proto_complete.h5"),
        cwd=files["proto_complete.h5"].parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "cannot check output proto_complete.h5" in run.stdout and "neither tables nor h5py" in run.stdout


def test_only_hdf5_outputs_are_checked():
    assert CtapipePayload().output_check("provenance.log") is None
    assert ProtopipePayload().output_check("model.pkl.gz") is None


# ---- through a real DiracX server, the wrapper run for real ----------------------------------------------
def _job(name: str, commands, output: str, payload: str) -> JobSpec:
    return JobSpec(
        name=name,
        stage="produce",
        unit="gamma",
        commands=tuple(tuple(c) for c in commands),
        outputs=(f"/vo.test/user/g/dxcheck/{output}",),
        payload=payload,
    )


def _submit_and_run(diracx, tmp_path, jobs, env):
    pytest.importorskip("diracx.testing")
    pytest.importorskip("moto")
    from test_dirac_backend import backend_of, dirac_analysis, run_like_a_node

    backend = backend_of(dirac_analysis(tmp_path, diracx, f"dxcheck{next(_ANALYSES)}", 1))
    try:
        ids = backend.submit(jobs)
        statuses = run_like_a_node(diracx, backend, list(ids.values()), env=env)
        assert set(statuses.values()) <= {JobStatus.DONE, JobStatus.FAILED}, statuses
        polled = {s.backend_id: s for s in backend.poll(list(ids.values()))}
        return {name: polled[job_id] for name, job_id in ids.items()}
    finally:
        backend.close()


def test_dirac_jobs_fail_when_their_outputs_fail_the_payloads_check(diracx, tmp_path):
    files = _files(tmp_path / "files")
    pwned = tmp_path / "pwned"

    def copy(name: str, output: str, payload: str) -> JobSpec:
        return _job(f"dxcheck_{name}", [["cp", "--", str(files[name]), output]], output, payload)

    jobs = [
        copy("proto_running.h5", "TRAINING_energy_gamma_tail_run1.h5", "protopipe"),
        copy("proto_none.h5", "TRAINING_energy_gamma_tail_run2.h5", "protopipe"),
        copy("proto_complete.h5", "TRAINING_energy_gamma_tail_run3.h5", "protopipe"),
        copy("event_truncated.h5", "gamma_run4.dl1.h5", "ctapipe"),
        copy("event_garbage.h5", "gamma_run5.dl1.h5", "ctapipe"),
        copy("event_partial.h5", "gamma_run6.dl1.h5", "ctapipe"),
        copy("event_good.h5", "gamma_run7.dl1.h5", "ctapipe"),
        _job(
            "dxcheck_hostile_bad", [["cp", "--", str(files["event_garbage.h5"]), HOSTILE]], HOSTILE, "ctapipe"
        ),
        _job(
            "dxcheck_hostile_good",
            [["cp", "--", str(files["event_good.h5"]), "ok" + HOSTILE]],
            "ok" + HOSTILE,
            "ctapipe",
        ),
    ]
    found = _submit_and_run(diracx, tmp_path, jobs, node_env(GP_PWNED=str(pwned)))
    status = {name.removeprefix("dxcheck_"): s.status for name, s in found.items()}
    reason = {name.removeprefix("dxcheck_"): s.reason or "" for name, s in found.items()}
    assert {name for name, s in status.items() if s == JobStatus.DONE} == {
        "proto_complete.h5",
        "event_good.h5",
        "hostile_good",
    }, reason
    dirac = " (DIRAC Failed: Application Finished With Errors (exit 5))"
    assert reason["proto_running.h5"] == (
        "output file 'TRAINING_energy_gamma_tail_run1.h5' failed its check (exit code 1): output "
        "TRAINING_energy_gamma_tail_run1.h5 has status 'running' at its root, not 'complete': the payload did "
        "not finish it (its exit code said it did)" + dirac
    )
    assert "has status None at its root, not 'complete'" in reason["proto_none.h5"]
    assert "output gamma_run4.dl1.h5 is not a readable HDF5 file" in reason["event_truncated.h5"]
    assert "output gamma_run5.dl1.h5 is not a readable HDF5 file" in reason["event_garbage.h5"]
    assert "output gamma_run6.dl1.h5 lacks /dl1/event/subarray/trigger" in reason["event_partial.h5"]
    assert reason["hostile_bad"].startswith(
        f"output file '{HOSTILE}' failed its check (exit code 1): output {HOSTILE} "
    )
    assert reason["hostile_bad"].endswith(dirac)
    assert not pwned.exists()


def test_ctapipe_exit_codes_are_worded_in_the_dirac_jobs_reason(diracx, tmp_path):
    """Real ctapipe tools fail on the node: 2 reads "configuration error", 1 "tool failure", each with the
    tool's last error line, worded by the payload from the job's std.err."""
    jobs = [
        _job(
            "dxcheck_config",
            [["ctapipe-process", "-i", "missing.simtel.gz", "-o", "out.h5", "--provenance-log", "p.log"]],
            "out.h5",
            "ctapipe",
        ),
        _job(
            "dxcheck_tool",
            [["ctapipe-merge", "-o", "m.h5", "--provenance-log", "p.log", "absent.h5"]],
            "m.h5",
            "ctapipe",
        ),
    ]
    found = _submit_and_run(diracx, tmp_path, jobs, node_env())
    config, tool = found["dxcheck_config"], found["dxcheck_tool"]
    assert config.status == tool.status == JobStatus.FAILED
    assert config.reason is not None and config.reason.startswith(
        "configuration error (ctapipe-process exited with code 2): input_url "
    )
    assert "missing.simtel.gz is not an existing file" in config.reason
    assert config.reason.endswith("(DIRAC Failed: Application Finished With Errors (exit 2))")
    assert tool.reason is not None and tool.reason.startswith(
        "tool failure (ctapipe-merge exited with code 1): "
    )
    assert "absent.h5" in tool.reason


def test_the_wrappers_last_failure_line_is_the_reason():
    from gridpipe.backends.dirac_reasons import needs_sandbox_reason, wrapper_reason

    stamp = "[gridpipe 2026-11-30T10:00:00Z]"
    assert wrapper_reason("a tool's noise\n") is None
    assert wrapper_reason(f"{stamp} job failed: step 1 (false) exited with code 1\n") == (
        "step 1 (false) exited with code 1"
    )
    stderr = (
        f"{stamp} job failed: an earlier line\n"
        "2026-11-30 10:00:00,000 ERROR [ctapipe.ctapipe-process] (tool.run): bad option x\n"
        f"{stamp} job failed (payload ctapipe): step 2 (ctapipe-process) exited with code 2\n"
    )
    assert wrapper_reason(stderr) == "configuration error (ctapipe-process exited with code 2): bad option x"
    unknown = f"{stamp} job failed (payload nosuch): step 2 (tool) exited with code 2\n"
    assert wrapper_reason(unknown) == "step 2 (tool) exited with code 2"
    assert needs_sandbox_reason("Failed", "Application Finished With Errors")
    assert not needs_sandbox_reason("Failed", "Input Data Resolution")
    assert not needs_sandbox_reason("Killed", "Application Finished With Errors")
