"""gridpipe.merge on real PyTables files: row sums, content, raw chunks, fallbacks, failures, VDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tables

from gridpipe.core.exceptions import CannotMergeError, GridpipeError, UsageError
from gridpipe.merge import MergeReport, merge_files
from gridpipe.merge.appender import PendingRows
from gridpipe.merge.verify import verify_output

ZLIB = tables.Filters(complevel=5, complib="zlib", shuffle=True)
CHUNK = 16


class Hillas(tables.IsDescription):
    intensity = tables.Float32Col(pos=0)
    width = tables.Float32Col(pos=1)


class Image(tables.IsDescription):
    file_id = tables.Int32Col(pos=0)
    row = tables.Int64Col(pos=1)
    energy = tables.Float64Col(pos=2)
    pixels = tables.Float32Col(shape=(3,), pos=3)
    camera = tables.StringCol(8, pos=4)
    hillas = Hillas()


class Event(tables.IsDescription):
    file_id = tables.Int32Col(pos=0)
    row = tables.Int64Col(pos=1)
    gammaness = tables.Float32Col(pos=2)
    reco_energy = tables.Float64Col(pos=3)


def _rows(dtype: np.dtype, file_id: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(file_id)
    data = np.zeros(n, dtype=dtype)
    for name in dtype.names:
        if name == "file_id":
            data[name] = file_id
        elif name == "row":
            data[name] = np.arange(n)
        elif name == "camera":
            data[name] = b"cam%d" % file_id
        elif name == "hillas":
            data[name]["intensity"] = rng.random(n)
            data[name]["width"] = rng.random(n)
        else:
            data[name] = rng.random(data[name].shape).round(3)
    return data


def make_file(
    path: Path,
    file_id: int,
    n: int,
    *,
    filters: tables.Filters = ZLIB,
    chunk: int = CHUNK,
    byteorder: str | None = None,
    energy_type: type = tables.Float64Col,
    vlarray: bool = False,
) -> Path:
    """A training/DL2-like file: two camera tables, a nested DL2 group, an EArray, an array, a link."""
    with tables.open_file(str(path), "w") as h5:
        h5.root._v_attrs.software = "protopipe-test"
        image = dict(Image.columns) | {"energy": energy_type(pos=2)}
        opts = {"filters": filters, "chunkshape": (chunk,), "byteorder": byteorder}
        for offset, camera in enumerate(("LSTCam", "NectarCam")):
            table = h5.create_table("/", camera, image, **opts)
            table.append(_rows(table.dtype, file_id, n + 3 * offset))
            table.attrs.camera = camera
        events = h5.create_table("/dl2/gamma", "events", Event, createparents=True, **opts)
        events.append(_rows(events.dtype, file_id, 2 * n + 1))
        params = h5.create_earray("/dl2", "params", tables.Float32Atom(), (0, 4), filters=filters)
        params.append(np.full((n, 4), file_id, dtype="f4") + np.arange(n, dtype="f4")[:, None])
        h5.create_array("/", "config", np.arange(5) + 100 * file_id)
        h5.create_soft_link("/", "latest", "/dl2/gamma/events")
        if vlarray:
            vl = h5.create_vlarray("/", "pulses", tables.Int16Atom())
            for i in range(n):
                vl.append(np.arange(i % 5, dtype="i2") + file_id)
    return path


def read_node(path: Path, node: str) -> np.ndarray:
    with tables.open_file(str(path)) as h5:
        return h5.get_node(node).read()


def concat(paths: list[Path], node: str) -> np.ndarray:
    return np.concatenate([read_node(p, node) for p in paths])


def assert_same_rows(merged: np.ndarray, expected: np.ndarray) -> None:
    """Same multiset of rows, and the rows of each input keep their relative order."""
    assert len(merged) == len(expected)
    order = np.lexsort((merged["row"], merged["file_id"]))
    np.testing.assert_array_equal(merged[order], expected)
    for file_id in np.unique(merged["file_id"]):
        assert np.all(np.diff(merged["row"][merged["file_id"] == file_id]) > 0)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


TABLES = ["/LSTCam", "/NectarCam", "/dl2/gamma/events"]


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    return [make_file(tmp_path / f"in{i}.h5", i, n) for i, n in enumerate((50, 37, 70, 9))]


def test_merge_sums_rows_and_keeps_every_row(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "TRAINING_energy_tail_gamma_merged.h5"
    report = merge_files(inputs, out)
    assert isinstance(report, MergeReport)
    assert report.inputs == inputs and not report.skipped and report.mode == "copy"
    for node in TABLES:
        assert report.rows[node] == len(concat(inputs, node))
        assert_same_rows(read_node(out, node), concat(inputs, node))
    params, expected = read_node(out, "/dl2/params"), concat(inputs, "/dl2/params")
    np.testing.assert_array_equal(params[np.lexsort(params.T)], expected[np.lexsort(expected.T)])
    assert report.rows["/dl2/params"] == 50 + 37 + 70 + 9
    assert report.bytes_in == sum(p.stat().st_size for p in inputs)
    assert report.bytes_out == out.stat().st_size
    assert no_temp_files(tmp_path)
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_keep_order_gives_exact_concatenation(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged.h5"
    merge_files(inputs, out, keep_order=True)
    for node in [*TABLES, "/dl2/params"]:
        np.testing.assert_array_equal(read_node(out, node), concat(inputs, node))


def test_full_chunks_are_copied_raw_and_only_partial_tails_recoded(
    inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "merged.h5"
    report = merge_files(inputs, out)
    nodes = [*TABLES, "/dl2/params"]
    with tables.open_file(str(inputs[0])) as h5:
        chunk = {node: h5.get_node(node).chunkshape[0] for node in nodes}
    counts = {node: [len(read_node(p, node)) for p in inputs] for node in nodes}
    assert all(n % CHUNK for node in TABLES for n in counts[node]), "every input must end in a partial chunk"
    assert report.chunks_copied == sum(n // chunk[node] for node in nodes for n in counts[node])
    assert report.rows_recoded == sum(n % chunk[node] for node in nodes for n in counts[node])
    with tables.open_file(str(inputs[1])) as src, tables.open_file(str(out)) as dst:
        first_full = (50 // CHUNK) * CHUNK  # input 1's first chunk lands right after input 0's full chunks
        source, merged = src.root.LSTCam, dst.root.LSTCam
        assert merged.read_chunk((first_full,)) == source.read_chunk((0,))
        assert merged.chunkshape == (CHUNK,) and merged.filters == ZLIB


def test_different_filters_chunks_and_byteorder_fall_back_to_recoding(tmp_path: Path) -> None:
    paths = [
        make_file(tmp_path / "a.h5", 0, 40, chunk=7),
        make_file(tmp_path / "b.h5", 1, 45, filters=tables.Filters(complevel=1, complib="blosc:lz4")),
        make_file(tmp_path / "c.h5", 2, 33, filters=tables.Filters(0), byteorder="big"),
        make_file(tmp_path / "d.h5", 3, 51),
        make_file(tmp_path / "e.h5", 4, 20),
    ]
    out = tmp_path / "merged.h5"
    report = merge_files(paths, out, keep_order=True)
    for node in [*TABLES, "/dl2/params"]:
        np.testing.assert_array_equal(read_node(out, node), concat(paths, node))
    with tables.open_file(str(out)) as h5:  # the storage most rows use wins (d and e: zlib, 16 rows)
        assert h5.root.LSTCam.chunkshape == (CHUNK,) and h5.root.LSTCam.filters == ZLIB
    fast = merge_files(paths, tmp_path / "fast.h5")
    for node in TABLES:
        assert_same_rows(read_node(tmp_path / "fast.h5", node), concat(paths, node))
    assert fast.rows == report.rows
    assert fast.chunks_copied > 0 and fast.rows_recoded < report.rows_recoded


def test_merged_file_reads_like_an_input_with_pytables(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged.h5"
    merge_files(inputs, out)
    with tables.open_file(str(out)) as h5, tables.open_file(str(inputs[0])) as first:
        for node in TABLES:
            merged, source = h5.get_node(node), first.get_node(node)
            assert isinstance(merged, tables.Table)
            assert merged.attrs.NROWS == merged.nrows == len(concat(inputs, node))
            assert merged.description._v_dtype == source.description._v_dtype
            assert merged.attrs._f_list("user") == source.attrs._f_list("user")
            assert merged.title == source.title
        assert h5.root.LSTCam.attrs.camera == "LSTCam"
        assert h5.root._v_attrs.software == "protopipe-test"
        assert isinstance(h5.root.dl2.params, tables.EArray)
        np.testing.assert_array_equal(h5.root.config.read(), np.arange(5))
        assert h5.root.latest.target == "/dl2/gamma/events"
        assert len(h5.root.latest()) == h5.root.dl2.gamma.events.nrows
        assert len(h5.root.LSTCam.read_where("file_id == 2")) == 70


def test_merged_tables_read_with_pandas(inputs: list[Path], tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "merged.h5"
    merge_files(inputs, out, keep_order=True)
    frame = pd.read_hdf(out, "/dl2/gamma/events")
    expected = pd.DataFrame(concat(inputs, "/dl2/gamma/events"))
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected)


def test_pandas_table_format_inputs_merge(tmp_path: Path) -> None:
    import pandas as pd

    frames = [
        pd.DataFrame({"x": np.arange(n, dtype="f8") + 1000 * i, "k": i}) for i, n in enumerate((30, 41))
    ]
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"p{i}.h5")
        frame.to_hdf(paths[-1], key="events", format="table", complevel=5, complib="zlib")
    out = tmp_path / "merged.h5"
    merge_files(paths, out, keep_order=True)
    merged = pd.read_hdf(out, "events")
    pd.testing.assert_frame_equal(merged, pd.concat(frames))


def test_vlarray_rows_are_concatenated(tmp_path: Path) -> None:
    paths = [make_file(tmp_path / f"v{i}.h5", i, n, vlarray=True) for i, n in enumerate((6, 11))]
    out = tmp_path / "merged.h5"
    report = merge_files(paths, out)
    assert report.rows["/pulses"] == 17
    merged = read_node(out, "/pulses")
    expected = read_node(paths[0], "/pulses") + read_node(paths[1], "/pulses")
    assert [list(r) for r in merged] == [list(r) for r in expected]


class Exotic(tables.IsDescription):
    flag = tables.BoolCol(pos=0)
    particle = tables.EnumCol(tables.Enum(["gamma", "proton", "electron"]), "gamma", base="uint8", pos=1)
    amplitude = tables.ComplexCol(itemsize=16, pos=2)
    trigger_time = tables.Time64Col(pos=3)  # no numpy type in h5py: rows go through PyTables


def test_earray_extended_along_its_second_dimension_merges_and_verifies(tmp_path: Path) -> None:
    paths = []
    for i, n in enumerate((5, 6)):
        with tables.open_file(str(tmp_path / f"e{i}.h5"), "w") as h5:
            h5.create_earray("/", "e", tables.Float32Atom(), (3, 0)).append(np.full((3, n), i, "f4"))
        paths.append(tmp_path / f"e{i}.h5")
    report = merge_files(paths, tmp_path / "merged.h5")
    assert report.rows == {"/e": 11}
    merged = read_node(tmp_path / "merged.h5", "/e")
    assert merged.shape == (3, 11) and merged[:, 5:].tolist() == [[1.0] * 6] * 3


def test_bool_enum_complex_and_time_columns_merge(tmp_path: Path) -> None:
    paths = []
    for i, n in enumerate((21, 19, 30)):
        paths.append(tmp_path / f"x{i}.h5")
        with tables.open_file(str(paths[-1]), "w") as h5:
            table = h5.create_table(
                "/", "x", Exotic, chunkshape=(8,), filters=tables.Filters(3, "blosc2:zstd")
            )
            rows = np.zeros(n, dtype=table.dtype)
            rows["flag"], rows["particle"] = np.arange(n) % 2 == 0, np.arange(n) % 3
            rows["amplitude"], rows["trigger_time"] = np.arange(n) * 1j + i, np.arange(n) * 0.5 + 100 * i
            table.append(rows)
    out = tmp_path / "merged.h5"
    report = merge_files(paths, out, keep_order=True)
    # input 0: 2 chunks raw + 5 queued; input 1 is off the chunk grid: all 19 recoded (5 + 19 = 3 chunks);
    # input 2 starts on the grid again: 3 chunks raw + 6 queued
    assert report.chunks_copied == 2 + 3 and report.rows_recoded == 5 + 19 + 6
    np.testing.assert_array_equal(read_node(out, "/x"), concat(paths, "/x"))
    with tables.open_file(str(out)) as h5:
        assert h5.root.x.get_enum("particle")(1) == "proton"
    with pytest.raises(CannotMergeError, match="cannot be virtual"):
        merge_files(paths, tmp_path / "vds.h5", mode="vds")


def test_indexed_columns_stay_indexed(inputs: list[Path], tmp_path: Path) -> None:
    with tables.open_file(str(inputs[0]), "a") as h5:
        h5.root.dl2.gamma.events.cols.reco_energy.create_index()
    out = tmp_path / "merged.h5"
    merge_files(inputs, out)
    with tables.open_file(str(out)) as h5:
        events = h5.root.dl2.gamma.events
        assert events.cols.reco_energy.is_indexed
        assert len(events.read_where("reco_energy >= 0")) == events.nrows


def test_schema_mismatch_names_file_and_table_and_writes_nothing(inputs: list[Path], tmp_path: Path) -> None:
    bad = make_file(tmp_path / "bad.h5", 9, 20, energy_type=tables.Float32Col)
    out = tmp_path / "merged.h5"
    with pytest.raises(CannotMergeError) as err:
        merge_files([*inputs, bad], out)
    assert "bad.h5" in err.value.detail and "/LSTCam" in err.value.detail
    assert "'energy' is f4 here but f8 there" in err.value.detail
    assert not out.exists() and no_temp_files(tmp_path)


def test_missing_node_is_a_mismatch(inputs: list[Path], tmp_path: Path) -> None:
    with tables.open_file(str(inputs[2]), "a") as h5:
        h5.remove_node("/NectarCam")
    with pytest.raises(CannotMergeError, match=r"in2\.h5: node /NectarCam is missing here"):
        merge_files(inputs, tmp_path / "merged.h5")
    assert not (tmp_path / "merged.h5").exists()


def test_verification_rejects_a_wrong_row_count(inputs: list[Path]) -> None:
    with pytest.raises(GridpipeError, match=r"/LSTCam has 50 rows \(NROWS 50\) after merging, expected 51"):
        verify_output(inputs[0], {"/LSTCam": 51}, ["/LSTCam"])
    with pytest.raises(GridpipeError, match="lacks node /nowhere"):
        verify_output(inputs[0], {}, ["/nowhere"])


def _bad_inputs(tmp_path: Path, good: Path) -> dict[str, Path]:
    bad = {name: tmp_path / f"{name}.h5" for name in ("zero", "garbage", "truncated", "nonodes")}
    bad["zero"].write_bytes(b"")
    bad["garbage"].write_bytes(np.random.default_rng(1).bytes(4096))
    bad["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    tables.open_file(str(bad["nonodes"]), "w").close()
    return bad


def test_empty_and_corrupt_inputs_are_skipped_and_reported(inputs: list[Path], tmp_path: Path) -> None:
    bad = _bad_inputs(tmp_path, inputs[0])
    out = tmp_path / "merged.h5"
    report = merge_files(
        [bad["zero"], inputs[0], bad["garbage"], inputs[1], bad["truncated"], bad["nonodes"]], out
    )
    assert report.inputs == inputs[:2]
    reasons = {s.path.stem: s.reason for s in report.skipped}
    assert reasons == {
        "zero": "empty (0 bytes)",
        "garbage": "corrupt: file signature not found",
        "truncated": reasons["truncated"],
        "nonodes": "empty (no nodes)",
    }
    assert reasons["truncated"].startswith("corrupt: truncated file")
    assert report.rows["/LSTCam"] == 50 + 37


WRITER = """
import sys, time, tables
h5 = tables.open_file(sys.argv[1], "a")
open(sys.argv[2], "w").close()
time.sleep(60)
"""


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE", reason="no HDF5 locks")
def test_input_still_open_for_writing_is_skipped_as_unreadable(inputs: list[Path], tmp_path: Path) -> None:
    marker = tmp_path / "writing"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, inputs[3], marker])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and writer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        report = merge_files(inputs, tmp_path / "merged.h5")
    finally:
        writer.kill()
        writer.wait()
    assert report.inputs == inputs[:3]
    assert [s.path for s in report.skipped] == [inputs[3]]
    assert report.skipped[0].reason.startswith("unreadable: unable to lock file")


def test_strict_mode_fails_on_a_bad_input_and_writes_nothing(inputs: list[Path], tmp_path: Path) -> None:
    bad = _bad_inputs(tmp_path, inputs[0])
    out = tmp_path / "merged.h5"
    with pytest.raises(GridpipeError, match=r"garbage\.h5: corrupt: file signature not found"):
        merge_files([*inputs, bad["garbage"]], out, strict=True)
    with pytest.raises(GridpipeError, match=r"zero\.h5: empty \(0 bytes\)"):
        merge_files([bad["zero"], *inputs], out, strict=True)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_no_good_input_is_an_error(tmp_path: Path) -> None:
    zero = tmp_path / "zero.h5"
    zero.write_bytes(b"")
    with pytest.raises(GridpipeError, match="none of the 1 inputs"):
        merge_files([zero], tmp_path / "merged.h5")


def test_remove_inputs_deletes_merged_inputs_only_after_success(inputs: list[Path], tmp_path: Path) -> None:
    bad = make_file(tmp_path / "bad.h5", 9, 20, energy_type=tables.Float32Col)
    with pytest.raises(CannotMergeError):
        merge_files([*inputs, bad], tmp_path / "merged.h5", remove_inputs=True)
    assert all(p.exists() for p in [*inputs, bad])
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5" * 100)
    expected = concat(inputs, "/LSTCam")
    report = merge_files([*inputs, garbage], tmp_path / "merged.h5", remove_inputs=True)
    assert report.removed_inputs == inputs
    assert not any(p.exists() for p in inputs) and garbage.exists()
    assert_same_rows(read_node(tmp_path / "merged.h5", "/LSTCam"), expected)


def test_existing_output_is_refused_unless_overwrite(inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged.h5"
    out.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        merge_files(inputs, out)
    assert out.read_bytes() == b"precious"
    merge_files(inputs, out, overwrite=True)
    assert len(read_node(out, "/LSTCam")) == 50 + 37 + 70 + 9


def test_bad_requests_are_refused(inputs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="also an input"):
        merge_files(inputs, inputs[1], overwrite=True)
    with pytest.raises(UsageError, match="given twice"):
        merge_files([*inputs, tmp_path / "." / inputs[0].name], tmp_path / "m.h5")
    with pytest.raises(UsageError, match="no input files"):
        merge_files([], tmp_path / "m.h5")
    with pytest.raises(UsageError, match="remove_inputs needs mode 'copy'"):
        merge_files(inputs, tmp_path / "m.h5", mode="vds", remove_inputs=True)
    assert not (tmp_path / "m.h5").exists()


def test_failure_mid_merge_leaves_no_file(inputs: list[Path], tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    def fail_after_two(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 2:
            raise RuntimeError("writer stopped")

    out = tmp_path / "merged.h5"
    with pytest.raises(RuntimeError, match="writer stopped"):
        merge_files(inputs, out, progress=fail_after_two, remove_inputs=True)
    assert calls == [(1, 4), (2, 4)]
    assert not out.exists() and no_temp_files(tmp_path)
    assert all(p.exists() for p in inputs)


CHILD = """
import sys, time
from pathlib import Path
from gridpipe.merge import merge_files

def stall(done, total):
    if done == 2:
        Path(sys.argv[2]).write_text("half way")
        time.sleep(120)

merge_files([Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), progress=stall)
"""


def test_killed_merge_leaves_nothing_under_the_final_name(inputs: list[Path], tmp_path: Path) -> None:
    out, marker = tmp_path / "merged.h5", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), out, marker, *inputs])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child merge never reached half way"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".merged.h5.")], "partial file is a temp"


def test_vds_mode_indexes_inputs_without_copying(
    inputs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "merged_vds.h5"
    report = merge_files(inputs, out, mode="vds")
    assert report.mode == "vds" and report.bytes_out < report.bytes_in / 2
    monkeypatch.chdir(tmp_path.parent)  # sources resolve relative to the output's folder, not the cwd
    for node in [*TABLES, "/dl2/params"]:
        np.testing.assert_array_equal(read_node(out, node), concat(inputs, node))
    with tables.open_file(str(out)) as h5:
        events = h5.root.dl2.gamma.events
        assert isinstance(events, tables.Table) and events.attrs.NROWS == events.nrows
        assert len(events.read_where("file_id == 1")) == 2 * 37 + 1
        np.testing.assert_array_equal(h5.root.config.read(), np.arange(5))
    import pandas as pd  # in the test extra: users read merged files with it

    assert len(pd.read_hdf(out, "/dl2/gamma/events")) == report.rows["/dl2/gamma/events"]


def test_vds_mode_refuses_vlarrays(tmp_path: Path) -> None:
    paths = [make_file(tmp_path / f"v{i}.h5", i, 5, vlarray=True) for i in range(2)]
    with pytest.raises(CannotMergeError, match="vlarray /pulses cannot be virtual"):
        merge_files(paths, tmp_path / "merged.h5", mode="vds")
    assert not (tmp_path / "merged.h5").exists() and no_temp_files(tmp_path)


@pytest.mark.parametrize("axis", [0, 1])
def test_pending_rows_hold_at_most_one_chunk_along_the_main_dimension(axis: int) -> None:
    shape = (4, 3) if axis == 0 else (3, 4)
    pending = PendingRows(shape, np.dtype("i4"), axis)
    rows = np.arange(18, dtype="i4").reshape((6, 3) if axis == 0 else (3, 6))
    rest = pending.put(np.take(rows, [0, 1], axis=axis))
    assert rest.shape[axis] == 0 and pending.count == 2
    rest = pending.put(np.take(rows, [2, 3, 4], axis=axis))
    np.testing.assert_array_equal(rest, np.take(rows, [4], axis=axis))
    np.testing.assert_array_equal(pending.take(), np.take(rows, [0, 1, 2, 3], axis=axis))
    assert pending.count == 0
    pending.put(rest)
    np.testing.assert_array_equal(pending.take(), np.take(rows, [4], axis=axis))


def test_pending_rows_copy_structured_rows_byte_for_byte() -> None:
    rows = _rows(tables.dtype_from_descr(Image), 3, 7)  # nested columns, strings, a shaped column
    pending = PendingRows((5,), rows.dtype, 0)
    rest = pending.put(rows[:2])
    rest = pending.put(rows[2:].astype(rows.dtype.newbyteorder(">")))  # converted to the buffer's type
    np.testing.assert_array_equal(pending.take(), rows[:5])
    assert rest.dtype == rows.dtype and rest.tobytes() == rows[5:].tobytes()


def test_pending_rows_with_object_fields_are_assigned_field_by_field() -> None:
    pending = PendingRows((3,), np.dtype([("n", "i4"), ("text", object)]), 0)
    rows = np.array([(1, "a"), (2, "bc"), (3, "def"), (4, "g")], dtype=pending.dtype)
    rest = pending.put(rows)
    assert pending.take().tolist() == [(1, "a"), (2, "bc"), (3, "def")] and rest.tolist() == [(4, "g")]
