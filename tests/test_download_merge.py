"""`gridpipe download` on an analysis: verified sync recovery of 250 HDF5 outputs, then an exact merge."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tables
from dl2_files import ROWS, write_dl2
from engine_helpers import gridpipe

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.service.context import Analysis

N_FILES = 250


@pytest.fixture
def analysis(tmp_path):
    path = create_analysis(CreateRequest(name="dl", analyses_dir=tmp_path)).path
    an = Analysis.open(path)
    folder = f"{an.grid_dir}/data/DL2/gamma"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for run in range(1, N_FILES + 1):
        write_dl2(scratch / "f.h5", run)
        an.storage.put(scratch / "f.h5", f"{folder}/DL2_gamma_tail_run{run}.h5")
    se_root = an.storage.root
    an.close()
    return path, folder, se_root, scratch


def _download(path, *extra):
    return gridpipe(
        "download", "--data-type", "DL2", "--particle", "gamma", "-j", "8", "--json", "-a", str(path), *extra
    )


def test_sync_recovers_missing_truncated_and_reports_corrupt(analysis):
    path, folder, se_root, scratch = analysis
    first = _download(path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)[0]
    assert report["fetched"] == N_FILES
    assert report["rows"] == {"/dl2/events": N_FILES * ROWS}
    local = path / "data" / "DL2" / "gamma"
    (local / "DL2_gamma_tail_run10.h5").unlink()  # missing locally
    (local / "DL2_gamma_tail_run20.h5").unlink()  # missing locally, corrupt in storage
    se_copy = se_root / folder.lstrip("/") / "DL2_gamma_tail_run20.h5"
    data = bytearray(se_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    se_copy.write_bytes(bytes(data))
    truncated = local / "DL2_gamma_tail_run30.h5"  # truncated locally
    truncated.write_bytes(truncated.read_bytes()[:100])
    (local / "notes.txt").write_text("mine")  # an extra local file is reported, kept

    broken = _download(path)
    assert broken.returncode == 1
    assert "DL2_gamma_tail_run20.h5" in broken.stderr and "Traceback" not in broken.stderr
    assert (local / "DL2_gamma_tail_run10.h5").exists()
    assert truncated.stat().st_size > 100
    assert not (local / "DL2_gamma_tail_run20.h5").exists()  # never a bad file under a final name

    write_dl2(scratch / "fixed.h5", 20)
    an = Analysis.open(path)
    an.storage.put(scratch / "fixed.h5", f"{folder}/DL2_gamma_tail_run20.h5")
    an.close()
    fixed = _download(path)
    assert fixed.returncode == 0, fixed.stderr
    report = json.loads(fixed.stdout)[0]
    assert report["fetched"] == 1
    assert report["extra"] == []  # extras only count files matching this data type's output names
    with tables.open_file(local / "DL2_tail_gamma_merged.h5") as h5:
        events = h5.root.dl2.events.read()
    assert len(events) == N_FILES * ROWS
    assert sorted(np.unique(events["obs_id"]).tolist()) == list(range(1, N_FILES + 1))
    assert (local / "notes.txt").read_text() == "mine"

    again = _download(path)
    assert json.loads(again.stdout)[0]["fetched"] == 0


def test_no_sync_merges_what_is_local_and_merge_reports_skipped(analysis):
    path, *_ = analysis
    assert _download(path, "--no-merge").returncode == 0
    local = path / "data" / "DL2" / "gamma"
    assert not (local / "DL2_tail_gamma_merged.h5").exists()
    (local / "DL2_gamma_tail_run5.h5").write_bytes(b"")  # an empty input
    result = gridpipe("merge", "--data-type", "DL2", "--particle", "gamma", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)[0]
    assert report["rows"] == {"/dl2/events": (N_FILES - 1) * ROWS}
    assert any("DL2_gamma_tail_run5.h5" in s for s in report["skipped"])
    strict = gridpipe("merge", "--data-type", "DL2", "--particle", "gamma", "--strict", "-a", str(path))
    assert strict.returncode != 0 and "DL2_gamma_tail_run5.h5" in strict.stderr


def test_unknown_data_type_or_particle_is_a_usage_error(analysis):
    path, *_ = analysis
    bad = gridpipe("download", "--data-type", "DL9", "-a", str(path))
    assert bad.returncode == 2 and "known: DL2, TRAINING/for_energy_estimation" in bad.stderr
    bad = gridpipe("download", "--data-type", "DL2", "--particle", "muon", "-a", str(path))
    assert bad.returncode == 2 and "muon" in bad.stderr


def test_demo_scripts_do_their_whole_job(tmp_path):
    """`gridpipe demo` in a folder whose name holds markup, quotes and a command substitution, then the
    generated scripts re-download, re-merge and upload with no edits. Paths print verbatim and the printed
    hint pastes into a shell as the command it shows."""
    hostile = tmp_path / "it's [/] $(touch pwned) [b]d"
    result = gridpipe("demo", str(hostile), timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = hostile / "gridpipe_demo"
    assert str(path) in result.stdout
    hint = next(line for line in result.stdout.splitlines() if "job status" in line).split(None, 2)[2]
    pasted = subprocess.run(
        ["bash", "-c", hint.replace("gridpipe ", f"{sys.executable} -m gridpipe ", 1)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert pasted.returncode == 0, pasted.stderr
    assert "gridpipe_demo" in pasted.stdout
    assert not list(tmp_path.rglob("pwned"))
    assert (path / "data" / "DL3" / "performance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    status = json.loads(gridpipe("status", "--json", "-a", str(path)).stdout)
    assert {job["status"] for job in status["jobs"]} == {"done"}
    assert set(status["stages"]) == {
        "training_energy",
        "model_energy",
        "training_classification",
        "model_classification",
        "dl2",
        "performance",
    }
    dl2 = path / "data" / "DL2"
    with tables.open_file(dl2 / "proton" / "DL2_tail_proton_merged.h5") as h5:
        expected = len(h5.root.dl2.events)
    shutil.rmtree(dl2 / "proton")
    script = subprocess.run(
        ["bash", str(path / "data" / "download_and_merge.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    with tables.open_file(dl2 / "proton" / "DL2_tail_proton_merged.h5") as h5:
        assert len(h5.root.dl2.events) == expected
    # an older generation's output that shares the name pattern (a renamed stage wrote it) is never merged
    one = next(p for p in sorted((dl2 / "proton").glob("DL2_*run*.h5")))
    shutil.copy(one, dl2 / "proton" / "DL2_proton_tail_run900000-run900009.h5")
    merged = gridpipe("merge", "--data-type", "DL2", "--particle", "proton", "-a", str(path))
    assert merged.returncode == 0, merged.stderr
    assert "DL2_proton_tail_run900000-run900009.h5: not an output of this unit's jobs" in merged.stdout
    with tables.open_file(dl2 / "proton" / "DL2_tail_proton_merged.h5") as h5:
        assert len(h5.root.dl2.events) == expected
    upload = subprocess.run(
        ["bash", str(path / "estimators" / "upload_models.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upload.returncode == 0, upload.stderr
    assert "DEMO-SE-1, DEMO-SE-2" in upload.stdout
