"""`gridpipe storage add|ls|rm`, and `check` naming listed inputs the storage does not know."""

from __future__ import annotations

import json
import zlib

import pytest
from engine_helpers import make_analysis

from gridpipe.core.exceptions import StorageError
from gridpipe.service.context import Analysis

LFN = "/vo.cta.in2p3.fr/user/r/root/sims"


def _adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def _sims(tmp_path):
    sims = tmp_path / "sims"
    (sims / "gamma").mkdir(parents=True)
    (sims / "gamma" / "run1.simtel").write_bytes(b"gamma one\n")
    (sims / "gamma" / "run2.simtel").write_bytes(b"gamma two\n" * 1000)
    (sims / "top.simtel").write_bytes(b"top\n")
    return sims


def test_add_copies_a_folder_under_an_lfn_folder_and_ls_shows_size_and_adler32(run_cli, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    sims = _sims(tmp_path)
    rc, out, err = run_cli("storage", "add", sims, "--to", LFN, "-a", path, cwd=tmp_path)
    assert rc == 0, err
    assert "3 file(s) added (copy)" in out
    rc, out, err = run_cli("storage", "ls", LFN, "--json", "-a", path, cwd=tmp_path)
    assert rc == 0, err
    listed = {f["lfn"]: f for f in json.loads(out)}
    two = listed[f"{LFN}/gamma/run2.simtel"]
    assert two["size"] == 10000 and two["adler32"] == _adler(b"gamma two\n" * 1000)
    assert sorted(listed) == [f"{LFN}/gamma/run1.simtel", f"{LFN}/gamma/run2.simtel", f"{LFN}/top.simtel"]
    (sims / "top.simtel").unlink()  # a copy: the storage keeps its own
    with Analysis.open(path) as an:
        got = an.storage.get(f"{LFN}/top.simtel", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == b"top\n" and got.size == 4


def test_in_place_registers_without_a_copy_and_rm_only_forgets(run_cli, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    sims = _sims(tmp_path)
    rc, out, err = run_cli(
        "storage", "add", sims / "gamma", "--to", LFN, "--in-place", "-a", path, cwd=tmp_path
    )
    assert rc == 0, err
    with Analysis.open(path) as an:
        root = an.storage.root
        assert not (root / LFN[1:] / "run1.simtel").exists()  # nothing copied
        an.storage.get(f"{LFN}/run1.simtel", tmp_path / "staged")
        assert (tmp_path / "staged").read_bytes() == b"gamma one\n"
    # a changed file is caught by its checksum on the next get
    (sims / "gamma" / "run1.simtel").write_bytes(b"gamma ONE\n")
    with Analysis.open(path) as an:
        with pytest.raises(StorageError, match="does not match the catalogue"):
            an.storage.get(f"{LFN}/run1.simtel", tmp_path / "staged2")
    rc, out, err = run_cli("storage", "rm", "-r", LFN, "-a", path, cwd=tmp_path)
    assert rc == 0, err
    assert "2 file(s) removed" in out
    assert (sims / "gamma" / "run2.simtel").exists()  # the user's file stays
    rc, out, _ = run_cli("storage", "ls", LFN, "-a", path, cwd=tmp_path)
    assert out.strip() == ""


def test_link_shares_the_file_and_bad_requests_are_one_line_errors(run_cli, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    sims = _sims(tmp_path)
    rc, _, err = run_cli(
        "storage", "add", sims / "top.simtel", "--to", LFN, "--link", "-a", path, cwd=tmp_path
    )
    assert rc == 0, err
    with Analysis.open(path) as an:
        stored = an.storage.root / LFN[1:] / "top.simtel"
    assert stored.stat().st_ino == (sims / "top.simtel").stat().st_ino
    rc, _, err = run_cli("storage", "add", sims, "--to", "not/absolute", "-a", path, cwd=tmp_path)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    rc, _, err = run_cli(
        "storage", "add", sims, "--to", LFN, "--link", "--in-place", "-a", path, cwd=tmp_path
    )
    assert rc == 2 and "exclude each other" in err
    rc, _, err = run_cli("storage", "rm", f"{LFN}/nothing-here", "-a", path, cwd=tmp_path)
    assert rc == 2 and "not in storage" in err


def test_check_names_listed_inputs_the_storage_does_not_know(run_cli, tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2})
    rc, out, err = run_cli("check", "-a", path, cwd=tmp_path)
    assert rc == 0 and "not in the local storage" not in out + err
    listed = path / "data" / "simtel" / "gamma_in.list"
    missing = [f"{LFN}/missing_run{i}.simtel" for i in range(3, 8)]
    listed.write_text(
        "# comments and blank lines count in line numbers\n\n"
        + listed.read_text()
        + "\n".join(missing)
        + "\n"
    )
    rc, out, err = run_cli("check", "-a", path, cwd=tmp_path)
    assert rc == 2, out + err  # every job reading them would fail on every attempt: an error
    text = out + err
    assert (
        f"error: {listed}:5: 5 of 7 input(s) are not in the local storage: {missing[0]} (line 5), "
        f"{missing[1]} (line 6), {missing[2]} (line 7) and 2 more; the jobs reading them would fail on every "
        f"attempt. Add them with `gridpipe storage add FILES --to {LFN}` (--in-place to register them "
        "where they are), or remove them from the list" in text
    )
    sims = tmp_path / "more"
    sims.mkdir()
    for lfn in missing:
        (sims / lfn.rsplit("/", 1)[1]).write_text("now here\n")
    assert run_cli("storage", "add", sims, "--to", LFN, "-a", path, cwd=tmp_path).rc == 0
    rc, out, err = run_cli("check", "-a", path, cwd=tmp_path)
    assert rc == 0 and "not in the local storage" not in out + err
