"""`gridpipe demo --payload ctapipe` end to end with ctapipe's real tools on synthetic events (one run,
shared by every test here), then single jobs of that analysis run again through the job worker: a retry
after a kill mid-write, a broken configuration and a failing tool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tables
from engine_helpers import gridpipe
from test_ctapipe_payload import CTAPIPE_STAGES

from gridpipe.core.models import JobSpec
from gridpipe.service.context import Analysis
from gridpipe.service.gather import output_pattern
from gridpipe.worker.records import ExitRecord, JobFile, read_exit_record, write_job_file
from gridpipe.workflow.planner import units_of

pytestmark = pytest.mark.slow
DEMO_TIMEOUT = 3600  # about 5 minutes on 2 idle cores; much longer on a machine shared with other jobs
EVENT_TABLES = ("/dl1/event/subarray/trigger", "/simulation/event/subarray/shower")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ctapipe-demo")
    started = time.monotonic()
    result = gridpipe("demo", "--payload", "ctapipe", str(folder), timeout=DEMO_TIMEOUT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"ctapipe demo: {time.monotonic() - started:.0f} s")
    path = folder / "gridpipe_ctapipe_demo"
    assert str(path / "data" / "DL3" / "irf.png") in result.stdout  # says where the results are
    return path


def _rows(path: Path, node: str) -> int:
    with tables.open_file(path) as h5:
        return int(h5.get_node(node).nrows)


def test_every_stage_is_done(demo):
    result = gridpipe("status", "--json", "-a", str(demo))
    assert result.returncode == 0, result.stderr
    stages = json.loads(result.stdout)["stages"]
    assert set(stages) == set(CTAPIPE_STAGES)
    for stage, units in stages.items():
        for unit, counts in units.items():
            assert set(counts) == {"done"}, (stage, unit, counts)


def test_the_irf_file_holds_the_irfs(demo):
    from astropy.io import fits

    with fits.open(demo / "data" / "DL3" / "irf.fits.gz") as hdus:
        names = {hdu.name for hdu in hdus}
        assert {"EFFECTIVE AREA", "ENERGY DISPERSION", "BACKGROUND", "PSF"} <= names
        area = np.asarray(hdus["EFFECTIVE AREA"].data["EFFAREA"][0], dtype=float)
    assert (np.isfinite(area) & (area > 0)).any()
    with fits.open(demo / "data" / "DL3" / "benchmarks.fits.gz") as hdus:
        assert {"ENERGY BIAS RESOLUTION", "SENSITIVITY"} <= {hdu.name for hdu in hdus}
    assert (demo / "data" / "DL3" / "irf.png").read_bytes()[:8] == PNG_SIGNATURE
    for model in ("energy_regressor/energy_regressor.pkl", "gamma_hadron_classifier/particle_classifier.pkl"):
        assert (demo / "estimators" / model).stat().st_size > 0


def test_merged_files_hold_every_row_of_their_inputs(demo):
    merged_from_several = 0
    with Analysis.open(demo) as an:
        for stage in an.workflow.stages:
            if stage.kind != "grid":
                continue
            for unit in units_of(stage):
                merged = an.merged_path(stage, unit.particle)
                outputs = sorted(merged.parent.glob(output_pattern(an, unit)))  # the jobs' outputs
                assert outputs, merged.parent
                merged_from_several += len(outputs) > 1
                for node in EVENT_TABLES:
                    assert _rows(merged, node) == sum(_rows(p, node) for p in outputs) > 0, (merged, node)
    assert merged_from_several >= 1  # ctapipe-merge itself ran on a unit's outputs


def _job(demo: Path, stage: str, unit: str) -> JobSpec:
    with Analysis.open(demo) as an:
        (record,) = an.store.jobs(stage=stage, unit=unit)
        return record.spec


def _worker(demo: Path, spec: JobSpec, folder: Path) -> subprocess.Popen[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    job_file = folder / "job.job.json"
    write_job_file(job_file, JobFile(analysis=str(demo), spec=spec))
    return subprocess.Popen(
        [sys.executable, "-m", "gridpipe.worker", str(job_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NUMBA_CACHE_DIR": str(demo / ".gridpipe" / "local" / "numba-cache")},
    )


def test_a_job_killed_mid_write_succeeds_on_its_retry(demo, tmp_path):
    spec = _job(demo, "dl2_models", "gamma")
    output = demo / "data" / "DL2" / "gamma" / "DL2_tail_gamma_models.h5"
    rows = _rows(output, "/dl1/event/subarray/trigger")
    output.unlink()
    first = _worker(demo, spec, tmp_path / "attempt1")
    deadline = time.monotonic() + 600
    while not output.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert output.exists(), "the tool never started writing its output"
    first.send_signal(signal.SIGTERM)  # as `gridpipe kill` stops a local job: the tool's group is stopped
    assert first.wait(timeout=120) == 128 + signal.SIGTERM
    killed = read_exit_record(tmp_path / "attempt1" / "job.exit.json")
    assert killed is not None and killed.status == "killed"
    assert output.exists()  # the half-written output is still there: the retry must not stop on it
    second = _worker(demo, spec, tmp_path / "attempt2")
    assert second.wait(timeout=600) == 0
    done = read_exit_record(tmp_path / "attempt2" / "job.exit.json")
    assert done is not None and done.status == "done", done
    assert _rows(output, "/dl1/event/subarray/trigger") == rows
    assert _rows(output, "/dl2/event/subarray/energy/ExtraTreesRegressor") == rows


def _run_aside(demo: Path, spec: JobSpec, argv: tuple[str, ...], tmp_path: Path) -> ExitRecord | None:
    """Run the model job with the command `argv`, its model written under `tmp_path` instead of the
    analysis's estimators; the worker exits 1 (the job failed) and its exit record is returned."""
    argv = tuple(
        str(tmp_path / "out" / Path(a).name) if a.startswith(str(demo / "estimators")) else a for a in argv
    )
    spec = JobSpec(**{**spec.__dict__, "commands": (argv,), "outputs": (str(tmp_path / "out"),)})
    assert _worker(demo, spec, tmp_path / "job").wait(timeout=600) == 1
    return read_exit_record(tmp_path / "job" / "job.exit.json")


def test_a_broken_config_is_a_configuration_error_with_the_tools_line(demo, tmp_path):
    spec = _job(demo, "model_energy", "energy_regressor")
    broken = tmp_path / "train_energy_regressor.yaml"
    text = (demo / "configs" / "train_energy_regressor.yaml").read_text()
    broken.write_text(text.replace("    log_target: True", "    log_targets: True"))
    (argv,) = spec.commands
    argv = tuple(str(broken) if a.endswith("/train_energy_regressor.yaml") else a for a in argv)
    record = _run_aside(demo, spec, argv, tmp_path)
    assert record is not None and record.status == "failed" and record.exit_code == 2
    assert record.reason.startswith(
        "configuration error (ctapipe-train-energy-regressor exited with code 2): "
    )
    assert "log_targets" in record.reason and "not recognized" in record.reason


def test_a_failing_tool_is_a_tool_failure_with_its_line(demo, tmp_path):
    spec = _job(demo, "model_energy", "energy_regressor")
    with Analysis.open(demo) as an:
        merged = str(an.merged_path(an.workflow.stage("training_energy"), "gamma"))
    dl1_only = next((demo / ".gridpipe" / "storage").rglob("*gamma_diffuse*run1001*.h5"))  # no DL2 geometry
    (argv,) = spec.commands
    argv = tuple(str(dl1_only) if a == merged else a for a in argv)
    record = _run_aside(demo, spec, argv, tmp_path)
    assert record is not None and record.status == "failed" and record.exit_code == 1
    assert record.reason.startswith("tool failure (ctapipe-train-energy-regressor exited with code 1): ")
    assert len(record.reason) > len("tool failure (ctapipe-train-energy-regressor exited with code 1): ")
