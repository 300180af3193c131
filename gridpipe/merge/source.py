"""Reading one merge input: raw chunks and rows through h5py, PyTables only for what h5py cannot decode.

Raw chunks are located once per dataset (HDF5's chunk index: offset, size, filter mask) and then read
as plain file bytes, runs of adjacent chunks in one read: HDF5's per-chunk read call costs more than
the bytes themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import tables

from gridpipe.merge.layout import NodeSpec

READ_BYTES = 8 * 2**20


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """Where one chunk's stored bytes are in its file, and which filters were skipped for it."""

    mask: int
    offset: int
    size: int


class TruncatedInputError(OSError):
    """An input's chunk lies past its end (the file shrank or was cut after it was screened)."""


class InputReader:
    """One open input file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._h5: h5py.File | None = None
        self._pt: tables.File | None = None
        self._dsets: dict[str, h5py.Dataset] = {}
        self._fd: int | None = None

    def __enter__(self) -> InputReader:
        self._h5 = h5py.File(self.path, "r")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._pt is not None:
            self._pt.close()
        if self._h5 is not None:
            self._h5.close()

    def _dset(self, path: str) -> h5py.Dataset:
        if path not in self._dsets:
            assert self._h5 is not None, "InputReader used outside its with-block"
            self._dsets[path] = self._h5[path]
        return self._dsets[path]

    def stored_chunks(self, path: str) -> dict[tuple[int, ...], StoredChunk]:
        """The chunks of `path` that exist in the file, by start coordinates."""
        dsid = self._dset(path).id
        base = self._h5.userblock_size if self._h5 is not None else 0
        chunks: dict[tuple[int, ...], StoredChunk] = {}

        def add(info: h5py.h5d.StoreInfo) -> None:
            chunks[tuple(info.chunk_offset)] = StoredChunk(
                info.filter_mask, base + info.byte_offset, info.size
            )

        if hasattr(dsid, "chunk_iter"):
            dsid.chunk_iter(add)
        else:  # pragma: no cover - h5py built against HDF5 < 1.14
            for i in range(dsid.get_num_chunks()):
                add(dsid.get_chunk_info(i))
        return chunks

    def read_stored(self, chunks: list[StoredChunk]) -> Iterator[tuple[int, memoryview]]:
        """(filter mask, stored bytes) of each chunk in turn; adjacent chunks are read in one call."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        i = 0
        while i < len(chunks):
            j, end = i + 1, chunks[i].offset + chunks[i].size
            while j < len(chunks) and chunks[j].offset == end and end - chunks[i].offset < READ_BYTES:
                end += chunks[j].size
                j += 1
            block = memoryview(os.pread(self._fd, end - chunks[i].offset, chunks[i].offset))
            if len(block) != end - chunks[i].offset:
                raise TruncatedInputError(f"{self.path}: ends inside a chunk at byte {chunks[i].offset}")
            at = 0
            for chunk in chunks[i:j]:
                yield chunk.mask, block[at : at + chunk.size]
                at += chunk.size
            i = j

    def rows(self, spec: NodeSpec, start: int, stop: int) -> Any:
        """Rows `start:stop` along the main dimension, decoded (a list of rows for VLArrays)."""
        if spec.kind != "vlarray" and spec.decodable:
            index: list[slice] = [slice(None)] * (len(spec.inner_shape) + 1)
            index[spec.maindim] = slice(start, stop)
            return np.asarray(self._dset(spec.path)[tuple(index)])
        if self._pt is None:
            self._pt = tables.open_file(str(self.path), "r")
        return self._pt.get_node(spec.path).read(start, stop)
