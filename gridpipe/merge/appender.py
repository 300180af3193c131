"""Append the rows of many input leaves to one output leaf, copying compressed chunks raw when possible.

The output only ever grows by whole chunks until `finish`, so every input's run of full chunks lands on
a chunk boundary and can be copied without decompressing. Rows that cannot go raw (the partial last
chunk of each input, or every row of an input whose chunk shape, filters or on-disk type differ) are
decoded and queued; whenever the queue holds at least one chunk of rows, whole chunks of it are
re-encoded. Memory stays within about one read block plus one chunk whatever the input size.

Re-encoded chunks are stored plain (compression skipped through the chunk's filter mask, Fletcher-32
kept: see `gridpipe.merge.plain`) in as many datasets as fit, smallest first, while their plain bytes
stay within `PLAIN_SHARE` of the inputs' total size (`store_plain_within`): the output is then at most
about that much bigger than the inputs. The others (many tiny inputs, tables smaller than a chunk,
`keep_order` on unaligned inputs) go through the dataset's own filters, as PyTables writes them.

Ordering: by default an input's full chunks may be written before the queued tail rows of earlier
inputs, so rows of one input keep their relative order but inputs can interleave at chunk granularity.
`keep_order=True` gives exact input order, at the price of decoding every input that does not start
on a chunk boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tables

from gridpipe.merge.layout import NodeSpec
from gridpipe.merge.plain import PlainChunks
from gridpipe.merge.source import InputReader
from gridpipe.merge.writer import ChunkWriter

BLOCK_BYTES = 8 * 2**20
PLAIN_SHARE = 0.05


def _cut(data: np.ndarray, axis: int, start: int, stop: int | None = None) -> np.ndarray:
    index = [slice(None)] * data.ndim
    index[axis] = slice(start, stop)
    return data[tuple(index)]


class PendingRows:
    """Fewer rows than a chunk waiting for more: one chunk-sized buffer, allocated on first use.

    Rows are copied in once, as raw bytes: a list of small arrays joined with `np.concatenate` cost
    ~0.2 ms per chunk for a 35-column table (numpy promotes every field), and numpy's assignment of
    a structured array copies field by field (~27 us for 230 rows of 35 columns, against 1 us).
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, axis: int) -> None:
        self.shape, self.dtype, self.axis = shape, dtype, axis
        self.size = shape[axis]
        self.count = 0
        self._raw = dtype if dtype.hasobject else np.dtype((np.void, dtype.itemsize))  # bytes, no fields
        self._buf: np.ndarray | None = None

    def put(self, rows: np.ndarray) -> np.ndarray:
        """Copy in the leading rows that fit; return the others."""
        if self._buf is None:
            self._buf = np.zeros(self.shape, dtype=self.dtype)
        rows = rows.astype(self.dtype, copy=False)
        take = min(self.size - self.count, rows.shape[self.axis])
        into = _cut(self._buf, self.axis, self.count, self.count + take)
        into.view(self._raw)[...] = _cut(rows, self.axis, 0, take).view(self._raw)
        self.count += take
        return _cut(rows, self.axis, take)

    def take(self) -> np.ndarray:
        """The rows held (a view, valid until the next `put`); the buffer is then empty."""
        assert self._buf is not None, "take() before put()"
        rows, self.count = _cut(self._buf, self.axis, 0, self.count), 0
        return rows


class ChunkAppender:
    """Grow one Table or EArray from many inputs of the same schema."""

    def __init__(self, out: tables.Leaf, spec: NodeSpec, *, keep_order: bool) -> None:
        """`spec` is the output leaf's; re-encoded chunks are compressed unless `plain` is set."""
        self.out = out
        self.spec = spec
        self.keep_order = keep_order
        self.axis = spec.maindim
        self.chunk_rows = int(out.chunkshape[self.axis])
        self.plain: PlainChunks | None = None
        self.row_bytes = max(1, out.dtype.itemsize * int(np.prod(spec.inner_shape, dtype=np.int64)))
        chunks_per_block = max(1, BLOCK_BYTES // (self.row_bytes * self.chunk_rows))
        self.block_rows = chunks_per_block * self.chunk_rows
        shape = list(spec.inner_shape)
        shape.insert(self.axis, self.chunk_rows)
        self.pending = PendingRows(tuple(shape), out.dtype, self.axis)
        self.rows = 0
        self.chunks_copied = 0
        self.rows_recoded = 0
        self._writer = ChunkWriter(out, len(spec.inner_shape) + 1)

    def rows_to_recode(self, inputs: Sequence[NodeSpec]) -> int:
        """How many rows `add` will decode and re-encode for these inputs (the others go raw)."""
        recode = pending = 0
        for spec in inputs:
            rows = spec.nrows % self.chunk_rows if self._raw_ok(spec, pending) else spec.nrows
            recode, pending = recode + rows, (pending + rows) % self.chunk_rows
        return recode

    def add(self, src: InputReader, spec: NodeSpec) -> None:
        """Append every row of the leaf `spec.path` of the input `src`."""
        start = 0
        if self._raw_ok(spec, self.pending.count):
            start = self._copy_chunks(src, spec, spec.nrows // self.chunk_rows)
        for lo in range(start, spec.nrows, self.block_rows):
            self._push(src.rows(spec, lo, min(lo + self.block_rows, spec.nrows)))
        self.rows += spec.nrows

    def finish(self) -> None:
        """Write the queued rows (the output's partial last chunk) and flush."""
        if self.pending.count:
            self._write(self.pending.take())
        if isinstance(self.out, tables.Table):  # raw and plain chunks bypass PyTables' row count
            self.out.attrs.NROWS = self.out.nrows
        self.out.flush()

    def _raw_ok(self, spec: NodeSpec, pending: int) -> bool:
        if not (self.spec.raw_copy_possible() and spec.storage == self.spec.storage):
            return False
        return not (self.keep_order and pending)

    def _copy_chunks(self, src: InputReader, spec: NodeSpec, nfull: int) -> int:
        """Copy the first `nfull` chunks of the leaf raw to the end of the output; return the rows done.

        Each stored chunk goes to the output row its own start gives, in the order the input's chunk
        index lists them; chunks the input never wrote (fill values) are copied as rows.
        """
        if nfull == 0:
            return 0
        size, end = self.chunk_rows, nfull * self.chunk_rows
        base = int(self.out.nrows)
        if base % size:
            raise AssertionError(f"{self.out._v_pathname}: output not on a chunk boundary ({base} rows)")
        self.out.truncate(base + end)
        write = self._writer.write
        chunks = [c for c in src.stored_chunks(spec.path) if c.chunk_offset[0] < end]
        for chunk, (mask, data) in zip(chunks, src.read_stored(chunks), strict=True):
            write(base + chunk.chunk_offset[0], data, mask)
        self.chunks_copied += len(chunks)
        if len(chunks) < nfull:
            stored = {chunk.chunk_offset[0] for chunk in chunks}
            for lo in range(0, end, size):
                if lo not in stored:
                    self.out[base + lo : base + lo + size] = src.rows(spec, lo, lo + size)
        return end

    def _push(self, rows: np.ndarray) -> None:
        """Queue `rows`; write every whole chunk of the queue (straight from `rows` when it can)."""
        rows = rows.astype(self.out.dtype, copy=False)
        if self.pending.count:
            rows = self.pending.put(rows)
            if self.pending.count < self.chunk_rows:
                return
            self._write(self.pending.take())
        whole = (rows.shape[self.axis] // self.chunk_rows) * self.chunk_rows
        if whole:
            self._write(_cut(rows, self.axis, 0, whole))
        if whole < rows.shape[self.axis]:
            self.pending.put(_cut(rows, self.axis, whole))

    def _write(self, data: np.ndarray) -> None:
        nrows = data.shape[self.axis]
        self.rows_recoded += nrows
        if self.plain is None:
            self.out.append(data)
            return
        base = int(self.out.nrows)
        self.out.truncate(base + nrows)
        for lo in range(0, nrows, self.chunk_rows):
            mask, raw = self.plain.encode(data[lo : lo + self.chunk_rows])
            self._writer.write(base + lo, raw, mask)


def store_plain_within(
    appenders: Mapping[str, ChunkAppender], inputs: Mapping[str, Sequence[NodeSpec]], budget: float
) -> int:
    """Store re-encoded chunks plain in the datasets whose plain bytes are smallest, while their sum
    stays within `budget`; `inputs` holds each dataset's specs in merge order. Returns the bytes."""
    costs: list[tuple[int, str, PlainChunks]] = []
    for path, appender in appenders.items():
        if (plain := PlainChunks.for_spec(appender.spec)) is not None:
            costs.append((appender.rows_to_recode(inputs[path]) * appender.row_bytes, path, plain))
    spent = 0
    for cost, path, plain in sorted(costs, key=lambda c: c[:2]):
        if spent + cost > budget:
            break
        spent += cost
        appenders[path].plain = plain
    return spent


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
