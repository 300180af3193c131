"""The `dirac` storage, run against the STAND-IN for DIRAC's dirac-dms-* commands (tests/dirac_dms_standin/).

DIRAC's data-management servers cannot run here, so the commands are small scripts over a local folder that
check their arguments like DIRAC and log every run; everything else (gridpipe, its CLI, processes, HDF5
files) is real. The invocation log proves bulk listing and the exact command lines gridpipe builds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tables
import yaml
from dl2_files import ROWS, write_dl2
from engine_helpers import gridpipe

from gridpipe.analysis.config import GridConfig
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.core.exceptions import StorageError, UsageError
from gridpipe.service.context import Analysis
from gridpipe.storage.checksum import adler32_bytes
from gridpipe.storage.dirac import DiracStorage
from gridpipe.storage.dirac_commands import COMMANDS, DiracCommands
from gridpipe.storage.registry import open_storage
from gridpipe.testing.storage_conformance import StorageConformance

STANDIN = Path(__file__).parent / "dirac_dms_standin"
SE1, SE2, SE3 = "STANDIN-SE-1", "STANDIN-SE-2", "STANDIN-SE-3"
BASE = "/vo.test/user/t/tester/dirac"
GUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


@pytest.fixture(scope="session")
def python_bin(tmp_path_factory) -> Path:
    """A folder whose `python3` starts fast: the system's, not this venv's (whose .pth hooks cost ~60 ms a run).

    The stand-in needs only the standard library, and runs hundreds of times per test session.
    """
    folder = tmp_path_factory.mktemp("python-bin")
    plain = [Path("/usr/bin/python3"), Path(sys.base_prefix) / "bin" / "python3", Path(sys.executable)]
    (folder / "python3").symlink_to(next(p for p in plain if p.exists()))
    return folder


@pytest.fixture
def standin(tmp_path, monkeypatch, python_bin) -> Path:
    """The stand-in's root folder, with its commands first on PATH."""
    root = tmp_path / "dms"
    path = os.pathsep.join([str(STANDIN), str(python_bin), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("GRIDPIPE_DMS_STANDIN_ROOT", str(root))
    monkeypatch.delenv("GRIDPIPE_DMS_STANDIN_NO_VERIFY", raising=False)
    monkeypatch.delenv("GRIDPIPE_DMS_STANDIN_SES", raising=False)
    return root


def _storage(se: str = SE1, timeout: float = 60) -> DiracStorage:
    return DiracStorage(DiracCommands.locate(None, timeout), se=se)


def _runs(root: Path) -> list[tuple[str, list[str]]]:
    """(command, argv) of every stand-in run so far; the log is emptied."""
    log = root / "invocations.jsonl"
    runs = [(r["command"], r["argv"]) for r in map(json.loads, log.read_text().splitlines())]
    log.write_text("")
    return runs


def _seed(root: Path, files: dict[str, Path], se: str = SE1) -> None:
    """Register many files with ONE `dirac-dms-add-file <list file>` run (DIRAC's list-file form)."""
    listing = root.parent / "seed.txt"
    listing.write_text("".join(f"{lfn} {path} {se}\n" for lfn, path in files.items()))
    done = subprocess.run(["dirac-dms-add-file", str(listing)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class TestDiracStorageConformance(StorageConformance):
    @pytest.fixture
    def storage(self, standin):
        return _storage()


def test_listing_is_bulk_and_stat_is_chunked(standin, tmp_path):
    scratch = tmp_path / "seed"
    scratch.mkdir()
    files = {}
    for i in range(250):
        (scratch / f"f{i}").write_bytes(b"run %d " % i * (i + 1))
        files[f"{BASE}/many/sub{i % 3}/f{i:03d}.h5"] = scratch / f"f{i}"
    _seed(standin, files)
    _runs(standin)
    listed = _storage().list(f"{BASE}/many")
    assert [f.lfn for f in listed] == sorted(files)
    assert all(f.size == files[f.lfn].stat().st_size for f in listed)
    assert all(f.adler32 == adler32_bytes(files[f.lfn].read_bytes()) for f in listed)
    assert _runs(standin) == [
        ("dirac-dms-find-lfns", [f"Path={BASE}/many"]),
        ("dirac-dms-lfn-metadata", sorted(files)),
    ]
    asked = sorted(files) + [f"{BASE}/many/missing{i}.h5" for i in range(850)]
    assert set(_storage().stat(asked)) == set(files)
    runs = _runs(standin)
    assert [(name, len(argv)) for name, argv in runs] == [
        ("dirac-dms-lfn-metadata", n) for n in (500, 500, 100)
    ]
    assert [lfn for _, argv in runs for lfn in argv] == asked


def test_put_replicates_and_get_runs_beside_the_destination(standin, tmp_path):
    src = tmp_path / "model.pkl"
    src.write_bytes(os.urandom(5000))
    lfn = f"{BASE}/models/model.pkl"
    storage = _storage()
    info = storage.put(src, lfn, replicas=[SE1, SE2, SE3, SE2])
    assert info.adler32 == adler32_bytes(src.read_bytes())
    (add, add_argv), *rest = _runs(standin)
    assert (add, add_argv[:4]) == ("dirac-dms-add-file", ["-f", lfn, str(src), SE1])
    assert len(add_argv) == 5 and GUID.fullmatch(add_argv[4])
    assert rest == [
        ("dirac-dms-replicate-lfn", [lfn, SE2]),
        ("dirac-dms-replicate-lfn", [lfn, SE3]),
        ("dirac-dms-lfn-metadata", [lfn]),
    ]
    assert storage.replicas(lfn) == [SE1, SE2, SE3]
    assert _runs(standin) == [("dirac-dms-lfn-replicas", ["-a", lfn])]
    for se in (SE1, SE2, SE3):
        assert (standin / "se" / se / lfn[1:]).read_bytes() == src.read_bytes()
    assert storage.replicas(f"{BASE}/models/none.pkl") == []
    _runs(standin)

    dest = tmp_path / "down" / "model.pkl"
    assert storage.get(lfn, dest) == info
    assert dest.read_bytes() == src.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["model.pkl"]
    log = [json.loads(line) for line in (standin / "invocations.jsonl").read_text().splitlines()]
    # one command: the metadata is known from the put
    assert [(r["command"], r["argv"]) for r in log] == [("dirac-dms-get-file", [lfn])]
    ran_in = Path(log[0]["cwd"])
    assert ran_in.parent == dest.parent and ran_in.name.startswith(".model.pkl.")


def test_corrupt_copy_is_refused_by_the_client_and_nothing_lands(standin, tmp_path):
    src = tmp_path / "f.h5"
    src.write_bytes(b"good data " * 100)
    lfn = f"{BASE}/bad/f.h5"
    _storage().put(src, lfn)
    _corrupt(standin / "se" / SE1 / lfn[1:])
    dest = tmp_path / "out" / "f.h5"
    with pytest.raises(StorageError) as err:
        _storage().get(lfn, dest)
    assert lfn in err.value.detail and "dirac-dms-get-file failed (exit 2)" in err.value.detail
    assert "Mismatch of checksums" in err.value.detail
    assert list(dest.parent.iterdir()) == []


def test_corrupt_copy_is_caught_by_gridpipe_when_the_client_does_not_check(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDPIPE_DMS_STANDIN_NO_VERIFY", "1")
    src = tmp_path / "f.h5"
    src.write_bytes(b"good data " * 100)
    storage = _storage()
    lfn = f"{BASE}/bad/f.h5"
    storage.put(src, lfn)
    assert [f.lfn for f in storage.list(f"{BASE}/bad")] == [lfn]
    _corrupt(standin / "se" / SE1 / lfn[1:])
    dest = tmp_path / "out" / "f.h5"
    dest.parent.mkdir()
    dest.write_bytes(b"the user's copy")
    _runs(standin)
    with pytest.raises(StorageError) as err:
        storage.get(lfn, dest)
    assert "does not match the catalogue" in err.value.detail and lfn in err.value.detail
    assert dest.read_bytes() == b"the user's copy"
    assert [p.name for p in dest.parent.iterdir()] == ["f.h5"]
    # the listed entry was re-read from the catalogue before the copy was refused
    assert [name for name, _ in _runs(standin)] == ["dirac-dms-get-file", "dirac-dms-lfn-metadata"]


def test_get_follows_a_file_replaced_since_it_was_listed(standin, tmp_path):
    src = tmp_path / "f.h5"
    src.write_bytes(b"version one")
    lfn = f"{BASE}/moving/f.h5"
    reader = _storage()
    _storage().put(src, lfn)
    (old,) = reader.list(f"{BASE}/moving")
    src.write_bytes(b"version two, longer")
    new = _storage().put(src, lfn)
    assert reader.get(lfn, tmp_path / "got.h5") == new != old
    assert (tmp_path / "got.h5").read_bytes() == b"version two, longer"


def test_lfn_that_is_also_a_local_path_goes_through_a_list_file(standin, tmp_path):
    lfn = str(tmp_path / "exists-here.h5")  # DIRAC would read this local file as a list of LFNs
    Path(lfn).write_bytes(b"not a list of LFNs")
    storage = _storage()
    info = storage.put(Path(lfn), lfn)
    assert storage.stat([lfn]) == {lfn: info}
    storage.get(lfn, tmp_path / "copy.h5")
    assert (tmp_path / "copy.h5").read_bytes() == b"not a list of LFNs"
    storage.remove([lfn])
    assert storage.stat([lfn]) == {}
    runs = _runs(standin)
    assert all(argv[-1].endswith("/lfns.txt") for name, argv in runs if name != "dirac-dms-add-file")


def test_command_failures_name_the_lfn_command_and_reason(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDPIPE_DMS_STANDIN_SES", f"{SE1},{SE2}")
    src = tmp_path / "f.h5"
    src.write_bytes(b"data")
    lfn = f"{BASE}/err/f.h5"
    with pytest.raises(StorageError) as err:
        _storage(se="NO-SUCH-SE").put(src, lfn)
    assert "dirac-dms-add-file failed (exit 3)" in err.value.detail
    assert lfn in err.value.detail and "NO-SUCH-SE" in err.value.detail
    with pytest.raises(StorageError) as err:
        _storage().put(src, lfn, replicas=["NO-SUCH-SE"])
    assert "dirac-dms-replicate-lfn failed (exit 2)" in err.value.detail and "NO-SUCH-SE" in err.value.detail
    empty = tmp_path / "empty.h5"
    empty.touch()
    with pytest.raises(StorageError, match="empty"):
        _storage().put(empty, lfn)
    with pytest.raises(UsageError, match=r"storage\.dirac\.se or grid\.upload_sites"):
        _storage(se="").put(src, lfn)
    with pytest.raises(StorageError, match="did not finish within"):
        _storage(timeout=0.001).stat([lfn])


def test_missing_commands_are_a_clear_usage_error(standin, tmp_path, monkeypatch):
    grid = _grid(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UsageError) as err:
        open_storage(grid, tmp_path)
    assert all(name in err.value.detail for name in COMMANDS)
    assert "install DIRAC's client" in err.value.detail and "storage: local" in err.value.detail
    partial = tmp_path / "bin"
    partial.mkdir()
    (partial / "dirac-dms-get-file").symlink_to(STANDIN / "dirac-dms-get-file")
    with pytest.raises(UsageError) as err:
        open_storage(_grid(tmp_path, dirac_bin_dir="bin"), tmp_path)
    assert "dirac-dms-find-lfns" in err.value.detail and "dirac-dms-get-file" not in err.value.detail
    assert str(partial) in err.value.detail
    storage = open_storage(_grid(tmp_path, dirac_bin_dir=str(STANDIN), dirac_se=SE3), tmp_path)
    assert isinstance(storage, DiracStorage) and storage.se == SE3
    assert storage.commands.paths["dirac-dms-add-file"] == str(STANDIN / "dirac-dms-add-file")


def test_standin_checks_arguments_like_dirac(standin):
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False)

    bad = run("dirac-dms-get-file", "--bogus", f"{BASE}/f.h5")
    assert bad.returncode == 2 and "Error when parsing command line arguments" in bad.stdout
    assert run("dirac-dms-add-file", f"{BASE}/f.h5", "/tmp/x").returncode == 1
    assert run("dirac-dms-replicate-lfn", f"{BASE}/f.h5").returncode == 1
    assert run("dirac-dms-replicate-lfn", f"{BASE}/f.h5", SE1, SE2, "cache", "extra").returncode == 1
    assert run("dirac-dms-find-lfns", f"--Path={BASE}").returncode == 1  # a switch is no query argument
    assert run("dirac-dms-find-lfns", f"Path={BASE},/x").returncode == 255
    assert run("dirac-dms-lfn-metadata", "relative/f.h5").returncode == 2
    assert run("dirac-dms-lfn-metadata").returncode == 1


def test_download_recovers_missing_truncated_and_reports_corrupt_with_dirac_storage(standin, tmp_path):
    path, grid_dir = _dirac_analysis(tmp_path)
    folder = f"{grid_dir}/data/DL2/gamma"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    files = {}
    for run in range(1, N_FILES + 1):
        write_dl2(scratch / f"run{run}.h5", run)
        files[f"{folder}/DL2_gamma_tail_run{run}.h5"] = scratch / f"run{run}.h5"
    _seed(standin, files)
    _runs(standin)

    first = _download(path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)[0]
    assert report["fetched"] == N_FILES and report["rows"] == {"/dl2/events": N_FILES * ROWS}
    counts = {}
    for name, _ in _runs(standin):
        counts[name] = counts.get(name, 0) + 1
    assert counts == {"dirac-dms-find-lfns": 1, "dirac-dms-lfn-metadata": 1, "dirac-dms-get-file": N_FILES}

    local = path / "data" / "DL2" / "gamma"
    (local / "DL2_gamma_tail_run10.h5").unlink()
    (local / "DL2_gamma_tail_run20.h5").unlink()
    _corrupt(standin / "se" / SE1 / folder.lstrip("/") / "DL2_gamma_tail_run20.h5")
    truncated = local / "DL2_gamma_tail_run30.h5"
    truncated.write_bytes(truncated.read_bytes()[:100])
    (local / "notes.txt").write_text("mine")

    broken = _download(path)
    assert broken.returncode == 1
    assert "DL2_gamma_tail_run20.h5" in broken.stderr and "Traceback" not in broken.stderr
    assert (local / "DL2_gamma_tail_run10.h5").exists() and truncated.stat().st_size > 100
    assert not (local / "DL2_gamma_tail_run20.h5").exists()
    assert not [p for p in local.iterdir() if p.name.startswith(".")]

    write_dl2(scratch / "fixed.h5", 20)
    an = Analysis.open(path)
    an.storage.put(scratch / "fixed.h5", f"{folder}/DL2_gamma_tail_run20.h5")
    an.close()
    fixed = _download(path)
    assert fixed.returncode == 0, fixed.stderr
    report = json.loads(fixed.stdout)[0]
    assert report["fetched"] == 1 and report["extra"] == []
    with tables.open_file(local / "DL2_tail_gamma_merged.h5") as h5:
        events = h5.root.dl2.events.read()
    assert len(events) == N_FILES * ROWS
    assert events["obs_id"].sum() == ROWS * N_FILES * (N_FILES + 1) // 2
    assert sorted(np.unique(events["obs_id"]).tolist()) == list(range(1, N_FILES + 1))
    assert (local / "notes.txt").read_text() == "mine"
    assert json.loads(_download(path).stdout)[0]["fetched"] == 0


def test_upload_models_replicates_to_both_upload_sites(standin, tmp_path):
    path, grid_dir = _dirac_analysis(tmp_path)
    models = {"energy_regressor": b"regressor " * 50, "gamma_hadron_classifier": b"classifier " * 70}
    for folder, data in models.items():
        (path / "estimators" / folder / "model.pkl").write_bytes(data)
    result = gridpipe("upload-models", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    uploaded = [item for items in done.values() for item in items]
    assert len(uploaded) == 2
    for item in uploaded:
        folder = item["lfn"].split("/")[-2]
        assert item["lfn"] == f"{grid_dir}/estimators/{folder}/model.pkl"
        assert item["replicas"] == [SE1, SE2]
        assert item["adler32"] == adler32_bytes(models[folder])
        for se in (SE1, SE2):
            assert (standin / "se" / se / item["lfn"][1:]).read_bytes() == models[folder]
    runs = _runs(standin)
    assert [name for name, _ in runs].count("dirac-dms-replicate-lfn") == 2
    assert ("dirac-dms-lfn-replicas", ["-a", uploaded[0]["lfn"]]) in runs


N_FILES = 250


def _download(path: Path) -> subprocess.CompletedProcess[str]:
    return gridpipe(
        "download", "--data-type", "DL2", "--particle", "gamma", "-j", "8", "--json", "-a", str(path)
    )


def _dirac_analysis(tmp_path: Path) -> tuple[Path, str]:
    """An analysis whose configs/grid.yaml says `storage: dirac` with two upload sites; (path, grid folder)."""
    path = create_analysis(CreateRequest(name="dl", analyses_dir=tmp_path)).path
    grid_file = path / "configs" / "grid.yaml"
    grid = yaml.safe_load(grid_file.read_text())
    grid["storage"]["name"] = "dirac"
    grid["grid"]["upload_sites"] = [SE1, SE2]
    grid_file.write_text(yaml.safe_dump(grid))
    an = Analysis.open(path)
    assert isinstance(an.storage, DiracStorage) and an.storage.se == SE1
    an.close()
    return path, an.grid_dir


def _grid(tmp_path: Path, **storage: str) -> GridConfig:
    return GridConfig.model_validate(
        {
            "analysis_name": "x",
            "grid": {"home": "/vo.test/user/t/tester", "path": "", "user_name": "tester"},
            "backend": {"name": "local"},
            "storage": {"name": "dirac", "local_root": str(tmp_path), **storage},
            "payload": {"name": "demo"},
        }
    )


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- reading DIRAC's output formats (text as DIRAC's pprint and printTable lay it out) --------------

METADATA_TEXT = """Some log line the client printed first
{'Failed': {'/vo/a/gone.h5': 'No such file or directory',
            '/vo/a/locked.h5': ('Permission denied for '
                                'this credential')},
 'Successful': {'/vo/a': {'CreationDate': datetime.datetime(2024, 5, 1, 8, 0, 1),
                          'DirID': 12,
                          'Mode': 509,
                          'Status': 0},
                '/vo/a/f.h5': {'Checksum': 'ED20D47',
                               'ChecksumType': 'AD',
                               'CreationDate': datetime.datetime(2024, 5, 1, 8, 0, 2),
                               'GUID': 'EDE6DDA4-3344-3F39-A993-8349BA41EB23',
                               'Size': 34,
                               'Status': 'AprioriGood'},
                '/vo/a/md5.h5': {'Checksum': '0123456789abcdef',
                                 'ChecksumType': 'MD5',
                                 'Size': 9}}}
"""


def test_metadata_output_is_parsed_without_evaluating_it():
    from gridpipe.storage.contract import FileInfo
    from gridpipe.storage.dirac_output import metadata_entries

    found, failed = metadata_entries(METADATA_TEXT, "test")
    assert found == {
        "/vo/a": None,
        "/vo/a/f.h5": FileInfo("/vo/a/f.h5", 34, "0ed20d47"),
        "/vo/a/md5.h5": FileInfo("/vo/a/md5.h5", 9, ""),
    }
    assert failed == {
        "/vo/a/gone.h5": "No such file or directory",
        "/vo/a/locked.h5": "Permission denied for this credential",
    }
    with pytest.raises(StorageError, match="printed no result dict"):
        metadata_entries("ERROR:  Failed to contact the file catalogue\n{'x': __import__('os')}", "test")


def test_replica_table_and_the_older_dict_form():
    from gridpipe.storage.dirac_output import find_lfns, remove_failures, replica_table

    table = """LFN          StorageElement URL
=================================
/vo/a/f.h5   CTA-SE-1       root://se1.example//vo/a/f.h5
             CTA-SE-0       root://se0.example//vo/a/f.h5
/vo/a/g.h5   CTA-SE-2       root://se2.example//vo/a/g.h5
/vo/a/x.h5   Unknown        No such file or directory
"""
    assert replica_table(table) == (
        {"/vo/a/f.h5": ["CTA-SE-0", "CTA-SE-1"], "/vo/a/g.h5": ["CTA-SE-2"]},
        {"/vo/a/x.h5": "No such file or directory"},
    )
    old = "{'Failed': {}, 'Successful': {'/vo/a/f.h5': {'SE-B': 'srm://b/f.h5', 'SE-A': 'srm://a/f.h5'}}}"
    assert replica_table(old) == ({"/vo/a/f.h5": ["SE-A", "SE-B"]}, {})
    assert replica_table("") == ({}, {})
    assert find_lfns("Querying...\n/vo/a/f.h5\n/vo/a/sub/g.h5\n/vo/ab/h.h5\n\n", "/vo/a/") == [
        "/vo/a/f.h5",
        "/vo/a/sub/g.h5",
    ]
    text = "Failed to remove 2 files with error: No such file or directory\nSuccessfully removed 3 files"
    assert remove_failures(text) == [(2, "No such file or directory")]
