"""Inputs damaged inside their data (the last-chunk check, damage found while merging); output space."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (blosc for h5py)
import numpy as np
import pytest
import tables
from test_merge import ZLIB, make_file, no_temp_files, read_node
from test_merge_plain import BLOSC, CHUNK

from gridpipe.core.exceptions import GridpipeError
from gridpipe.merge import merge_files
from gridpipe.merge.fletcher import fletcher32
from gridpipe.merge.writer import give_back_space, reserve_space


def _last_chunk(path: Path, node: str) -> tuple[int, int, int]:
    """(first row, byte offset, stored size) of the last chunk of `node`."""
    with h5py.File(path) as h5:
        dset = h5[node]
        start = (dset.shape[0] - 1) // CHUNK * CHUNK
        info = dset.id.get_chunk_info_by_coord((start,))
    return start, info.byte_offset, info.size


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    ("filters", "rows"), [(BLOSC, CHUNK * 6 + 5), (BLOSC, CHUNK * 6), (ZLIB, CHUNK * 6 + 5)]
)
def test_an_input_damaged_in_its_last_chunk_is_skipped_or_refused(
    filters: tables.Filters, rows: int, tmp_path: Path
) -> None:
    good = [make_file(tmp_path / f"in{i}.h5", i, rows, filters=filters) for i in range(2)]
    damaged = make_file(tmp_path / "damaged.h5", 7, rows, filters=filters)
    _, offset, size = _last_chunk(damaged, "/NectarCam")
    _flip_byte(damaged, offset + size // 2)
    out = tmp_path / "merged.h5"
    report = merge_files([good[0], damaged, good[1]], out)
    assert report.inputs == good
    assert [s.path for s in report.skipped] == [damaged]
    assert report.skipped[0].reason.startswith("corrupt: ")
    assert len(read_node(out, "/NectarCam")) == 2 * (rows + 3)
    with pytest.raises(GridpipeError, match=r"damaged\.h5: corrupt: "):
        merge_files([good[0], damaged], tmp_path / "strict.h5", strict=True)
    assert not (tmp_path / "strict.h5").exists()


def test_the_last_chunk_check_names_the_node(tmp_path: Path) -> None:
    damaged = make_file(tmp_path / "damaged.h5", 7, CHUNK * 3 + 1, filters=BLOSC)
    _, offset, _ = _last_chunk(damaged, "/dl2/gamma/events")
    _flip_byte(damaged, offset + 1)
    report = merge_files(
        [make_file(tmp_path / "in0.h5", 0, CHUNK * 3 + 1, filters=BLOSC), damaged], tmp_path / "m.h5"
    )
    assert (
        report.skipped[0].reason
        == "corrupt: /dl2/gamma/events: its last chunk fails its Fletcher-32 checksum"
    )


def test_damage_found_while_merging_names_the_input_and_keeps_nothing(tmp_path: Path) -> None:
    """A tail chunk whose checksum matches but whose compressed bytes do not decode (a writer's fault)."""
    good = make_file(tmp_path / "in0.h5", 0, CHUNK * 4 + 3, filters=BLOSC)
    bad = make_file(tmp_path / "bad.h5", 1, CHUNK * 4 + 3, filters=BLOSC)
    start, _, size = _last_chunk(bad, "/LSTCam")
    garbage = b"\xff" * (size - 4)  # a blosc header claiming more bytes than a chunk holds
    with tables.open_file(str(bad), "a") as h5:
        h5.root.LSTCam.write_chunk((start,), garbage + fletcher32(garbage).to_bytes(4, "little"), 0)
    out = tmp_path / "merged.h5"
    with pytest.raises(GridpipeError, match=r"bad\.h5: corrupt: .* reading /LSTCam"):
        merge_files([good, bad], out)
    assert not out.exists() and no_temp_files(tmp_path)


def test_space_reserved_for_the_output_is_given_back_when_hdf5_closes_it(tmp_path: Path) -> None:
    path = make_file(tmp_path / "f.h5", 0, 40)
    size = path.stat().st_size
    if not reserve_space(path, size + 2**20):
        pytest.skip("no fallocate on this file system")
    assert path.stat().st_size == size + 2**20
    with tables.open_file(str(path), "a") as h5:
        h5.root.LSTCam.append(h5.root.LSTCam[:3])
    assert size <= path.stat().st_size < size + 2**20  # cut back to HDF5's end of allocated space
    assert len(read_node(path, "/LSTCam")) == 43


def test_space_reserved_while_pytables_holds_the_file_is_given_back_and_nothing_else_changes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.h5"
    with tables.open_file(str(path), "w") as h5:
        table = h5.create_table("/", "LSTCam", read_node(make_file(tmp_path / "f.h5", 0, 40), "/LSTCam"))
        h5.flush()
        if not reserve_space(path, path.stat().st_size + 2**20):
            pytest.skip("no fallocate on this file system")
        table.append(table[:3])
    held = path.read_bytes()  # PyTables' HDF5 kept the reserved space: it never saw it appear
    give_back_space(path)
    kept = path.read_bytes()
    assert len(kept) < len(held) - 2**19 and held[: len(kept)] == kept and not held[len(kept) :].strip(b"\0")
    assert len(read_node(path, "/LSTCam")) == 43


def test_a_merged_file_is_not_bigger_than_its_inputs(tmp_path: Path) -> None:
    inputs = [make_file(tmp_path / f"in{i}.h5", i, CHUNK * 30 + i, filters=BLOSC) for i in range(4)]
    report = merge_files(inputs, tmp_path / "merged.h5")
    assert report.bytes_out == (tmp_path / "merged.h5").stat().st_size < report.bytes_in


def test_an_input_holding_a_named_datatype_is_skipped_as_corrupt(tmp_path: Path) -> None:
    good = make_file(tmp_path / "in0.h5", 0, 20)
    odd = make_file(tmp_path / "odd.h5", 1, 20)
    with h5py.File(odd, "a") as h5:
        h5["/dl2/kind"] = np.dtype("f4")  # a committed (named) type: neither a group nor a dataset
    report = merge_files([good, odd], tmp_path / "merged.h5")
    assert report.inputs == [good]
    assert report.skipped[0].reason == "corrupt: /dl2/kind is a named datatype, not a dataset or group"


@pytest.mark.parametrize("attrs", [False, True])
def test_datasets_written_by_h5py_merge(attrs: bool, tmp_path: Path) -> None:
    """Without CLASS and EXTDIM the kind and main dimension come from the type and the shape; attributes
    h5py writes (a variable-length string, a scalar, an array) are read through the general path."""
    paths = []
    for i, n in enumerate((40, 7)):
        paths.append(tmp_path / f"in{i}.h5")
        with h5py.File(paths[-1], "w") as h5:
            grow = h5.create_dataset(
                "grow", data=np.arange(n * 6, dtype="i4").reshape(2, n, 3), maxshape=(2, None, 3)
            )
            h5.create_dataset("fixed", data=np.arange(4.0) + i)
            if attrs:
                grow.attrs["CLASS"], grow.attrs["EXTDIM"] = "EARRAY", np.int32(1)
            else:
                grow.attrs["shape"] = [2, n, 3]  # an array attribute, not read
    report = merge_files(paths, tmp_path / "merged.h5")
    assert report.rows == {"/grow": 47}
    with h5py.File(tmp_path / "merged.h5") as h5:
        np.testing.assert_array_equal(h5["grow"][:, 40:], np.arange(42, dtype="i4").reshape(2, 7, 3))
        np.testing.assert_array_equal(h5["fixed"][:], np.arange(4.0))
