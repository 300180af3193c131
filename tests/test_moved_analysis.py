"""An analysis keeps working after `mv`; a storage that is not where configs say is an error, not a new empty
one; `--delete-extra` never deletes on a storage that lists nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from engine_helpers import gridpipe, make_analysis


def _ran(tmp_path: Path) -> Path:
    path = make_analysis(tmp_path / "a", {"gamma": 3, "proton": 2})
    done = gridpipe("run", "--poll-interval", "0.05", "-a", str(path), timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


def test_a_moved_analysis_keeps_its_storage_and_outputs(tmp_path):
    path = _ran(tmp_path)
    outputs = sorted(p.name for p in (path / "data/OUT/gamma").iterdir())
    moved = tmp_path / "elsewhere" / path.name
    moved.parent.mkdir()
    shutil.move(path, moved)
    status = json.loads(gridpipe("status", "--json", "-a", str(moved)).stdout)
    assert {j["status"] for j in status["jobs"]} == {"done"}
    download = gridpipe("download", "--data-type", "OUT", "--no-merge", "--delete-extra", "-a", str(moved))
    assert download.returncode == 0, download.stdout + download.stderr
    assert "extra" not in download.stdout
    assert sorted(p.name for p in (moved / "data/OUT/gamma").iterdir()) == outputs
    assert not path.exists()  # nothing was made at the old place


def test_a_storage_root_that_is_gone_is_an_error_not_a_new_storage(tmp_path):
    path = _ran(tmp_path)
    grid = path / "configs/grid.yaml"
    data = yaml.safe_load(grid.read_text())
    gone = tmp_path / "old-place" / "ana" / ".gridpipe" / "storage"
    data["storage"]["local"]["root"] = str(gone)
    grid.write_text(yaml.safe_dump(data))
    proc = gridpipe("download", "--data-type", "OUT", "--no-merge", "--delete-extra", "-a", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert str(gone) in proc.stderr and "storage.local.root" in proc.stderr
    assert not gone.exists()
    assert list((path / "data/OUT/gamma").iterdir())  # nothing deleted


def test_delete_extra_refuses_when_the_storage_lists_nothing(tmp_path):
    path = _ran(tmp_path)
    grid = path / "configs/grid.yaml"
    data = yaml.safe_load(grid.read_text())
    empty = tmp_path / "empty-storage"
    empty.mkdir()
    data["storage"]["local"]["root"] = str(empty)
    grid.write_text(yaml.safe_dump(data))
    before = sorted(p.name for p in (path / "data/OUT/gamma").iterdir())
    proc = gridpipe("download", "--data-type", "OUT", "--no-merge", "--delete-extra", "-a", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "nothing was deleted" in proc.stderr
    assert sorted(p.name for p in (path / "data/OUT/gamma").iterdir()) == before
