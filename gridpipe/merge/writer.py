"""Writing one output leaf: whole stored chunks and rows, through h5py or (for what h5py cannot) PyTables.

A leaf whose rows h5py can encode (its types and filters) is written through h5py, on the file opened
with a page buffer when it was created paged (`gridpipe.merge.space`): HDF5 then gathers the ~50 KB
chunks into whole pages and writes each page once. Other leaves (and VLArrays) are written through
PyTables in a second pass. Both writers offer the same few calls (`OutputLeaf`), so the appender
does not know which one it drives.

PyTables' public `Leaf.write_chunk` checks the coordinates and builds two numpy arrays on every call
(~7 us), so `TablesLeaf` calls the same HDF5 function through PyTables' extension method with one
reused coordinate array; the public method is used when the extension method is not there.
"""

from __future__ import annotations

from typing import Protocol

import h5py
import numpy as np
import tables
from tables.utils import SizeType


class OutputLeaf(Protocol):
    """A chunked output leaf growing along its main dimension (raw chunks only when that is 0)."""

    path: str
    dtype: np.dtype
    chunkshape: tuple[int, ...]
    nrows: int

    def resize(self, nrows: int) -> None:
        """Set the number of rows (new rows read as the fill value until written)."""

    def write_chunk(self, start: int, data: bytes | memoryview, mask: int) -> None:
        """Store `data` (already filtered, except the filters set in `mask`) as the chunk at row `start`."""

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        """Write `rows` at row `start` (inside the size, main dimension 0) through the leaf's filters."""

    def append(self, rows: np.ndarray) -> None:
        """Add `rows` at the end through the leaf's filters."""

    def close(self) -> None:
        """Record the row count where PyTables keeps it and flush."""


class H5Leaf:
    """An output leaf with main dimension 0 written through h5py (direct chunk write for stored chunks)."""

    def __init__(self, dset: h5py.Dataset, table: bool) -> None:
        self.path = dset.name or ""
        self.dtype = dset.dtype
        self.chunkshape = tuple(dset.chunks or ())
        self.nrows = int(dset.shape[0])
        self._dset, self._table = dset, table
        self._inner = tuple(int(n) for n in dset.shape[1:])
        self._zeros = (0,) * len(self._inner)

    def resize(self, nrows: int) -> None:
        self._dset.id.set_extent((nrows, *self._inner))
        self.nrows = nrows

    def write_chunk(self, start: int, data: bytes | memoryview, mask: int) -> None:
        self._dset.id.write_direct_chunk((start, *self._zeros), data, mask)

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        self._dset[start : start + rows.shape[0]] = rows

    def append(self, rows: np.ndarray) -> None:
        start = self.nrows
        self.resize(start + rows.shape[0])
        self.write_rows(start, rows)

    def close(self) -> None:
        if self._table:  # PyTables reads a table's row count from NROWS; its type is kept as written
            self._dset.attrs.modify("NROWS", np.int64(self.nrows))
        self._dset.id.flush()


class TablesLeaf:
    """An output leaf written through PyTables."""

    def __init__(self, leaf: tables.Leaf) -> None:
        self.path = leaf._v_pathname
        self.dtype = leaf.dtype
        self.chunkshape = tuple(leaf.chunkshape)
        self._leaf = leaf
        self._coords = np.zeros(len(leaf.shape), dtype=SizeType)
        self._direct = getattr(leaf, "_g_write_chunk", None)

    @property
    def nrows(self) -> int:
        return int(self._leaf.nrows)

    def resize(self, nrows: int) -> None:
        self._leaf.truncate(nrows)

    def write_chunk(self, start: int, data: bytes | memoryview, mask: int) -> None:
        if self._direct is None:  # pragma: no cover - PyTables without the extension method
            self._leaf.write_chunk((start, *self._coords[1:].tolist()), data, mask)
            return
        self._coords[0] = start
        self._direct(self._coords, np.frombuffer(data, dtype=np.uint8), mask)

    def write_rows(self, start: int, rows: np.ndarray) -> None:
        self._leaf[start : start + rows.shape[0]] = rows

    def append(self, rows: np.ndarray) -> None:
        self._leaf.append(rows)

    def close(self) -> None:
        if isinstance(self._leaf, tables.Table):  # raw chunks bypass PyTables' row count
            self._leaf.attrs.NROWS = self._leaf.nrows
        self._leaf.flush()
