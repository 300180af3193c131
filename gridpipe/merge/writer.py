"""Writing stored chunks into an output leaf: HDF5's direct chunk write, one call per chunk.

PyTables' public `Leaf.write_chunk` checks the coordinates and builds two numpy arrays on every call
(~7 us), which at ~20,000 chunks per GB cost about a tenth of a merge. The merge writes only whole
chunks at coordinates it computed itself inside a size it has just set (`truncate`), so it calls the
same HDF5 function through PyTables' extension method with one reused coordinate array; the public
method is used when the extension method is not there (another PyTables version).
"""

from __future__ import annotations

import numpy as np
import tables
from tables.utils import SizeType


class ChunkWriter:
    """Writes stored chunk bytes at a main-dimension row `start` of one chunked output leaf (dim 0)."""

    def __init__(self, out: tables.Leaf, ndim: int) -> None:
        self._out = out
        self._coords = np.zeros(ndim, dtype=SizeType)
        self._direct = getattr(out, "_g_write_chunk", None)

    def write(self, start: int, data: bytes | memoryview, mask: int) -> None:
        """Store `data` (already filtered, except the filters set in `mask`) as the chunk at row `start`."""
        if self._direct is None:  # pragma: no cover - PyTables without the extension method
            self._out.write_chunk((start, *self._coords[1:].tolist()), data, mask)
            return
        self._coords[0] = start
        self._direct(self._coords, np.frombuffer(data, dtype=np.uint8), mask)
