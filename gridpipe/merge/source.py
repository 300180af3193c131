"""Reading one merge input: raw chunks and rows through h5py, PyTables only for what h5py cannot decode."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import tables

from gridpipe.merge.layout import NodeSpec


class InputReader:
    """One open input file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._h5: h5py.File | None = None
        self._pt: tables.File | None = None
        self._dsets: dict[str, h5py.Dataset] = {}

    def __enter__(self) -> InputReader:
        self._h5 = h5py.File(self.path, "r")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pt is not None:
            self._pt.close()
        if self._h5 is not None:
            self._h5.close()

    def _dset(self, path: str) -> h5py.Dataset:
        if path not in self._dsets:
            assert self._h5 is not None, "InputReader used outside its with-block"
            self._dsets[path] = self._h5[path]
        return self._dsets[path]

    def allocated_chunks(self, path: str) -> set[tuple[int, ...]]:
        """Start coordinates of the chunks of `path` that exist in the file."""
        dsid = self._dset(path).id
        starts: set[tuple[int, ...]] = set()
        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(lambda info: starts.add(tuple(info.chunk_offset)))
        else:  # pragma: no cover - h5py built against HDF5 < 1.14
            starts.update(tuple(dsid.get_chunk_info(i).chunk_offset) for i in range(dsid.get_num_chunks()))
        return starts

    def raw_chunk(self, path: str, start: tuple[int, ...]) -> tuple[int, bytes]:
        """(filter mask, stored bytes) of the chunk of `path` starting at `start`, not decompressed."""
        mask, data = self._dset(path).id.read_direct_chunk(start)
        return int(mask), data

    def rows(self, spec: NodeSpec, start: int, stop: int) -> Any:
        """Rows `start:stop` along the main dimension, decoded (a list of rows for VLArrays)."""
        if spec.kind != "vlarray" and spec.decodable:
            index: list[slice] = [slice(None)] * (len(spec.inner_shape) + 1)
            index[spec.maindim] = slice(start, stop)
            return np.asarray(self._dset(spec.path)[tuple(index)])
        if self._pt is None:
            self._pt = tables.open_file(str(self.path), "r")
        return self._pt.get_node(spec.path).read(start, stop)
