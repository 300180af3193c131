"""Append the rows of many input leaves to one output leaf, copying compressed chunks raw when possible.

The output only ever grows by whole chunks until `finish`, so every input's run of full chunks lands on
a chunk boundary and can be copied without decompressing. Rows that cannot go raw (the partial last
chunk of each input, or every row of an input whose chunk shape, filters or on-disk type differ) are
decoded and queued; whenever the queue holds at least one chunk of rows, whole chunks of it are
re-encoded. Memory stays within about one read block plus one chunk whatever the input size.

Ordering: by default an input's full chunks may be written before the queued tail rows of earlier
inputs, so rows of one input keep their relative order but inputs can interleave at chunk granularity.
`keep_order=True` gives exact input order, at the price of decoding every input that does not start
on a chunk boundary.
"""

from __future__ import annotations

import numpy as np
import tables

from gridpipe.merge.layout import NodeSpec
from gridpipe.merge.source import InputReader

BLOCK_BYTES = 8 * 2**20


def _cut(data: np.ndarray, axis: int, start: int, stop: int | None = None) -> np.ndarray:
    index = [slice(None)] * data.ndim
    index[axis] = slice(start, stop)
    return data[tuple(index)]


class ChunkAppender:
    """Grow one Table or EArray from many inputs of the same schema."""

    def __init__(self, out: tables.Leaf, spec: NodeSpec, *, keep_order: bool) -> None:
        self.out = out
        self.spec = spec
        self.keep_order = keep_order
        self.axis = spec.maindim
        self.chunk_rows = int(out.chunkshape[self.axis])
        row_bytes = max(1, out.dtype.itemsize * int(np.prod(spec.inner_shape, dtype=np.int64)))
        chunks_per_block = max(1, BLOCK_BYTES // (row_bytes * self.chunk_rows))
        self.block_rows = chunks_per_block * self.chunk_rows
        self.pending: list[np.ndarray] = []
        self.npending = 0
        self.rows = 0
        self.chunks_copied = 0
        self.rows_recoded = 0

    def add(self, src: InputReader, spec: NodeSpec) -> None:
        """Append every row of the leaf `spec.path` of the input `src`."""
        start = 0
        if self._raw_ok(spec):
            start = self._copy_chunks(src, spec, spec.nrows // self.chunk_rows)
        for lo in range(start, spec.nrows, self.block_rows):
            self._push(src.rows(spec, lo, min(lo + self.block_rows, spec.nrows)))
        self.rows += spec.nrows

    def finish(self) -> None:
        """Write the queued rows (the output's partial last chunk) and flush."""
        if self.npending:
            self._write(self._take_pending())
        self.out.flush()

    def _raw_ok(self, spec: NodeSpec) -> bool:
        if not (self.spec.raw_copy_possible() and spec.storage == self.spec.storage):
            return False
        return not (self.keep_order and self.npending)

    def _copy_chunks(self, src: InputReader, spec: NodeSpec, nfull: int) -> int:
        """Copy the first `nfull` chunks of the leaf raw to the end of the output; return the rows done."""
        if nfull == 0:
            return 0
        size = self.chunk_rows
        base = int(self.out.nrows)
        if base % size:
            raise AssertionError(f"{self.out._v_pathname}: output not on a chunk boundary ({base} rows)")
        self.out.truncate(base + nfull * size)
        inner = (0,) * len(self.spec.inner_shape)
        allocated = src.allocated_chunks(spec.path)
        for k in range(nfull):
            start = (k * size, *inner)
            if start in allocated:
                mask, data = src.raw_chunk(spec.path, start)
                self.out.write_chunk((base + k * size, *inner), data, mask)
                self.chunks_copied += 1
            else:  # never written: holds fill values, copy them as rows
                rows = src.rows(spec, k * size, (k + 1) * size)
                self.out[base + k * size : base + (k + 1) * size] = rows
        return nfull * size

    def _push(self, rows: np.ndarray) -> None:
        self.pending.append(rows.astype(self.out.dtype, copy=False))
        self.npending += rows.shape[self.axis]
        if self.npending < self.chunk_rows:
            return
        data = self._take_pending()
        whole = (data.shape[self.axis] // self.chunk_rows) * self.chunk_rows
        self._write(_cut(data, self.axis, 0, whole))
        rest = _cut(data, self.axis, whole)
        if rest.shape[self.axis]:
            self.pending, self.npending = [rest], rest.shape[self.axis]

    def _take_pending(self) -> np.ndarray:
        data = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending, axis=self.axis)
        self.pending, self.npending = [], 0
        return data

    def _write(self, data: np.ndarray) -> None:
        self.out.append(data)
        self.rows_recoded += data.shape[self.axis]


class RowAppender:
    """Grow one VLArray row by row (its rows point into a heap, so chunks cannot be copied raw)."""

    block_rows = 4096

    def __init__(self, out: tables.VLArray) -> None:
        self.out = out
        self.rows = 0
        self.chunks_copied = 0
        self.rows_recoded = 0

    def add(self, src: InputReader, spec: NodeSpec) -> None:
        """Append every row of the VLArray `spec.path` of the input `src`."""
        for lo in range(0, spec.nrows, self.block_rows):
            for row in src.rows(spec, lo, min(lo + self.block_rows, spec.nrows)):
                self.out.append(row)
        self.rows += spec.nrows
        self.rows_recoded += spec.nrows

    def finish(self) -> None:
        """Flush the output."""
        self.out.flush()
