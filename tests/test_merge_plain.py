"""Re-encoded tail chunks stored plain (filters skipped through the chunk's filter mask, Fletcher-32 kept)."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (blosc for h5py)
import numpy as np
import pytest
import tables
from test_merge import TABLES, assert_same_rows, concat, make_file, read_node

from gridpipe.merge import merge_files
from gridpipe.merge.plain import fletcher32
from gridpipe.merge.source import InputReader, read_buffer

BLOSC = tables.Filters(complevel=5, complib="blosc:zstd", shuffle=True, fletcher32=True)
CHUNK = 16
NODES = [*TABLES, "/dl2/params"]

CHECKSUM_CASES = {
    "zeros": np.zeros(1001, "u1"),
    "all_ones": np.full(1000, 255, "u1"),  # every sum a non-zero multiple of 65535
    "one_word_65535": np.array([255, 255], "u1"),
    "odd_length": np.arange(999, dtype="u1"),
    "one_byte": np.array([7], "u1"),
    "random_64k": np.random.default_rng(1).integers(0, 256, 65536).astype("u1"),
}


@pytest.mark.parametrize("name", CHECKSUM_CASES)
def test_fletcher32_is_hdf5s(name: str, tmp_path: Path) -> None:
    data = CHECKSUM_CASES[name]
    with h5py.File(tmp_path / "f.h5", "w") as h5:
        dset = h5.create_dataset(name, data=data, chunks=(data.size,), fletcher32=True)
        _, stored = dset.id.read_direct_chunk((0,))
    assert stored[:-4] == data.tobytes()
    assert int.from_bytes(stored[-4:], "little") == fletcher32(stored[:-4])


def chunk_masks(path: Path, node: str) -> list[int]:
    with tables.open_file(str(path)) as h5:
        leaf = h5.get_node(node)
        size = leaf.chunkshape[0]
        inner = (0,) * (len(leaf.shape) - 1)
        return [leaf.chunk_info((start, *inner)).filter_mask for start in range(0, leaf.nrows, size)]


@pytest.fixture
def long_inputs(tmp_path: Path) -> list[Path]:
    """Inputs of many full chunks and a short tail: tails are under 5% of every table's rows."""
    return [
        make_file(tmp_path / f"in{i}.h5", i, n, filters=BLOSC)
        for i, n in enumerate((CHUNK * 40 + 5, CHUNK * 50 + 9, CHUNK * 45 + 2))
    ]


def test_small_tails_are_stored_plain_and_read_back_exactly(long_inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged.h5"
    report = merge_files(long_inputs, out)
    for node in TABLES:
        assert_same_rows(read_node(out, node), concat(long_inputs, node))
        with h5py.File(out) as h5:  # h5py (hdf5plugin's blosc) honours the masks too
            assert_same_rows(h5[node][:], concat(long_inputs, node))
        masks = chunk_masks(out, node)
        assert set(masks) == {0, 0b01}, "blosc skipped (bit 0), Fletcher-32 (bit 1) applied"
        assert masks.count(0b01) == -(
            -sum(n % CHUNK for n in map(len, (read_node(p, node) for p in long_inputs))) // CHUNK
        )
    params = read_node(out, "/dl2/params")
    expected = concat(long_inputs, "/dl2/params")
    np.testing.assert_array_equal(params[np.lexsort(params.T)], expected[np.lexsort(expected.T)])
    assert report.rows_recoded > 0
    assert out.stat().st_size < 1.05 * sum(p.stat().st_size for p in long_inputs)


def test_keep_order_with_plain_tails_is_exact(long_inputs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged.h5"
    merge_files([long_inputs[0]], out, keep_order=True)  # one input: only its tail is re-encoded
    np.testing.assert_array_equal(read_node(out, "/LSTCam"), read_node(long_inputs[0], "/LSTCam"))
    assert chunk_masks(out, "/LSTCam")[-1] == 0b01


def test_tails_beyond_five_percent_of_the_inputs_stay_compressed(tmp_path: Path) -> None:
    """Tables under one chunk: every row is re-encoded, far more than 5% of the inputs' bytes."""
    paths = [
        make_file(tmp_path / f"in{i}.h5", i, n, filters=BLOSC, chunk=512)
        for i, n in enumerate((300, 400, 450))
    ]
    out = tmp_path / "merged.h5"
    merge_files(paths, out)
    for node in TABLES:
        assert_same_rows(read_node(out, node), concat(paths, node))
        assert set(chunk_masks(out, node)) == {0}


def _flip_byte_in_chunk(path: Path, node: str, start: int) -> None:
    with h5py.File(path) as h5:
        offset = h5[node].id.get_chunk_info_by_coord((start,)).byte_offset
    with path.open("r+b") as fh:
        fh.seek(offset + 3)
        byte = fh.read(1)
        fh.seek(offset + 3)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_fletcher32_still_catches_damage_in_plain_and_copied_chunks(
    long_inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "merged.h5"
    merge_files(long_inputs, out)
    masks = chunk_masks(out, "/LSTCam")
    plain, copied = masks.index(0b01) * CHUNK, masks.index(0) * CHUNK
    for start in (plain, copied):
        damaged = tmp_path / f"damaged{start}.h5"
        damaged.write_bytes(out.read_bytes())
        _flip_byte_in_chunk(damaged, "/LSTCam", start)
        with tables.open_file(str(damaged)) as h5, pytest.raises(tables.HDF5ExtError):
            h5.root.LSTCam.read(start, start + CHUNK)


def test_inputs_with_a_user_block_copy_their_chunks_from_the_right_bytes(tmp_path: Path) -> None:
    paths = []
    for i, n in enumerate((CHUNK * 30 + 3, CHUNK * 20 + 1)):
        path = tmp_path / f"ub{i}.h5"
        h5py.File(path, "w", userblock_size=4096).close()
        with tables.open_file(str(path), "a") as h5:
            h5.create_table("/", "LSTCam", make_rows_like(i, n), filters=BLOSC, chunkshape=(CHUNK,))
        paths.append(path)
    out = tmp_path / "merged.h5"
    report = merge_files(paths, out)
    assert report.chunks_copied == 30 + 20
    assert_same_rows(read_node(out, "/LSTCam"), concat(paths, "/LSTCam"))


@pytest.mark.parametrize("buffer_bytes", [None, 1, 300])
def test_stored_chunks_read_in_runs_are_hdf5s_bytes(buffer_bytes: int | None, tmp_path: Path) -> None:
    """Runs of chunks are read into the shared buffer; a chunk larger than the buffer is read on its own."""
    path = tmp_path / "in.h5"
    with tables.open_file(str(path), "w") as h5:
        h5.create_table("/", "LSTCam", make_rows_like(3, CHUNK * 12), filters=BLOSC, chunkshape=(CHUNK,))
    buffer = read_buffer() if buffer_bytes is None else bytearray(buffer_bytes)
    with InputReader(path, buffer) as reader:
        stored = reader.stored_chunks("/LSTCam")
        got = [(mask, bytes(data)) for mask, data in reader.read_stored(stored)]
    with h5py.File(path) as h5:
        want = [h5["LSTCam"].id.read_direct_chunk(chunk.chunk_offset) for chunk in stored]
    assert len(got) == 12 and got == want


def make_rows_like(file_id: int, n: int) -> np.ndarray:
    rows = np.zeros(n, dtype=[("file_id", "i4"), ("row", "i8"), ("value", "f8")])
    rows["file_id"], rows["row"] = file_id, np.arange(n)
    rows["value"] = np.random.default_rng(file_id).random(n)
    return rows


def test_a_merged_file_with_plain_tails_takes_appends(long_inputs: list[Path], tmp_path: Path) -> None:
    """Appending later (as `ctapipe-merge --append` does) rewrites the plain partial chunk compressed."""
    out = tmp_path / "merged.h5"
    merge_files(long_inputs, out)
    assert chunk_masks(out, "/LSTCam")[-1] == 0b01
    extra = read_node(long_inputs[0], "/LSTCam")[:20]
    with tables.open_file(str(out), "a") as h5:
        h5.root.LSTCam.append(extra)
    merged = read_node(out, "/LSTCam")
    np.testing.assert_array_equal(merged[-20:], extra)
    assert_same_rows(merged[:-20], concat(long_inputs, "/LSTCam"))


def test_chunks_an_input_never_wrote_are_merged_as_fill_values(tmp_path: Path) -> None:
    """A table grown by `truncate` has chunks that were never stored: they merge as rows of fill values."""
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"gap{i}.h5")
        rows = make_rows_like(i, CHUNK * 4 + 3)
        with tables.open_file(str(paths[-1]), "w") as h5:
            table = h5.create_table("/", "LSTCam", rows.dtype, filters=BLOSC, chunkshape=(CHUNK,))
            table.append(rows[: CHUNK * 2])
            table.truncate(CHUNK * 5)  # chunks 2, 3 and 4 hold fill values and are not stored
            table.append(rows[CHUNK * 2 :])
    assert (read_node(paths[0], "/LSTCam")[CHUNK * 2 : CHUNK * 5] == np.zeros(1, rows.dtype)).all()
    report = merge_files(paths, tmp_path / "ordered.h5", keep_order=True)
    assert report.chunks_copied == 4  # the first input's chunks 0, 1, 5 and 6; the second is decoded
    np.testing.assert_array_equal(read_node(tmp_path / "ordered.h5", "/LSTCam"), concat(paths, "/LSTCam"))
    report = merge_files(paths, tmp_path / "merged.h5")
    assert report.chunks_copied == 2 * 4
    merged = read_node(tmp_path / "merged.h5", "/LSTCam")
    np.testing.assert_array_equal(np.sort(merged), np.sort(concat(paths, "/LSTCam")))
