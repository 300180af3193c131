"""Chunks stored with their compression skipped: HDF5's per-chunk filter mask, and Fletcher-32 kept.

Every HDF5 chunk carries a filter mask; a set bit i means filter i of the dataset's pipeline was not
applied to that chunk, and every HDF5 reader (PyTables, h5py, pandas, ctapipe) then skips it when
reading. The merge stores the few chunks it must re-encode (the inputs' partial tails) this way:
the rows' bytes as they are on disk, no compression, and, when the pipeline ends with Fletcher-32,
its checksum computed here, so a damaged chunk is still detected on read. Compressing a chunk with
blosc:zstd costs milliseconds; this costs microseconds, and a little disk when tails are a large share
(the merge decides per dataset, see `gridpipe.merge.appender`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import h5py
import numpy as np

from gridpipe.merge.dtypes import h5_types
from gridpipe.merge.fletcher import FLETCHER32, fletcher32
from gridpipe.merge.layout import NodeSpec


def _same_bytes(disk: h5py.h5t.TypeID, memory: h5py.h5t.TypeID) -> bool:
    """Whether values of `memory` type are stored byte for byte as `disk` type (string padding aside)."""
    cls = disk.get_class()
    if cls != memory.get_class() or disk.get_size() != memory.get_size():
        return False
    if cls == h5py.h5t.STRING:  # PyTables pads with NUL-termination, numpy with NULs: same bytes
        return not (disk.is_variable_str() or memory.is_variable_str())
    if cls == h5py.h5t.COMPOUND:
        members = range(disk.get_nmembers())
        return disk.get_nmembers() == memory.get_nmembers() and all(
            disk.get_member_name(i) == memory.get_member_name(i)
            and disk.get_member_offset(i) == memory.get_member_offset(i)
            and _same_bytes(disk.get_member_type(i), memory.get_member_type(i))
            for i in members
        )
    if cls == h5py.h5t.ARRAY:
        return disk.get_array_dims() == memory.get_array_dims() and _same_bytes(
            disk.get_super(), memory.get_super()
        )
    return bool(disk.equal(memory))


@lru_cache(maxsize=256)
def _plain_dtype(encoded: bytes) -> np.dtype | None:
    """The numpy dtype of an encoded disk type whose values are stored byte for byte as that type, or
    None (cached: the comparison walks every member, ~1 ms for a 35-column table)."""
    disk = h5py.h5t.decode(encoded)
    dtype, memory = h5_types(encoded)
    return dtype if _same_bytes(disk, memory) and dtype.itemsize == disk.get_size() else None


@dataclass(frozen=True)
class PlainChunks:
    """Encodes rows as plain chunks of one dataset: its disk dtype, chunk rows and filter mask."""

    dtype: np.dtype
    chunk_shape: tuple[int, ...]
    mask: int
    checksum: bool

    @classmethod
    def for_spec(cls, spec: NodeSpec) -> PlainChunks | None:
        """The encoder for `spec`'s storage, or None when its chunks cannot be stored plain."""
        if not (spec.raw_copy_possible() and spec.h5py_types and spec.chunkshape):
            return None
        fids = [fid for fid, _, _ in spec.pipeline]
        if FLETCHER32 in fids[:-1]:  # a filter after Fletcher-32 would need to run on its output
            return None
        dtype = _plain_dtype(spec.disk_type)
        if dtype is None:  # no numpy dtype with exactly the disk bytes: re-encode through the filters
            return None
        checksum = bool(fids) and fids[-1] == FLETCHER32
        mask = (1 << len(fids)) - 1 - ((1 << (len(fids) - 1)) if checksum else 0)
        return cls(dtype, spec.chunkshape, mask, checksum)

    def encode(self, rows: np.ndarray) -> tuple[int, bytes]:
        """(filter mask, stored bytes) of one chunk holding `rows` (at most one chunk; zero padded)."""
        if rows.shape == self.chunk_shape and rows.dtype == self.dtype:
            raw = rows.tobytes()  # a whole chunk: no padding, no copy into a new array
        else:
            data = np.zeros(self.chunk_shape, dtype=self.dtype)
            data[: rows.shape[0]] = rows
            raw = data.tobytes()
        if self.checksum:
            raw += fletcher32(raw).to_bytes(4, "little")
        return self.mask, raw
