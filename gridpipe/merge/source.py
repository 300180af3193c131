"""Reading one merge input: raw chunks and rows through h5py, PyTables only for what h5py cannot decode.

Raw chunks are located once per dataset (HDF5's chunk index: offset, size, filter mask) and then read
as plain file bytes, runs of adjacent chunks in one read of at most `READ_BYTES`: HDF5's per-chunk
read call cost more than the bytes themselves. The runs are read into one buffer that the merge
reuses for every input (`read_buffer`): a new 8 MB bytes object per read is new memory that the
kernel maps and zeroes page by page (~36,000 page faults and a fifth of the reading's kernel time
per GB).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import h5py
import tables

from gridpipe.core.exceptions import GridpipeError
from gridpipe.merge.inputs import error_reason
from gridpipe.merge.layout import NodeSpec, open_read_only, read_rows

READ_BYTES = 8 * 2**20


class StoredChunk(Protocol):
    """One stored chunk: its start coordinates, where its bytes are in its file, which filters were
    skipped for it (h5py's StoreInfo, used as h5py gives it: an object of our own cost 1-3 us a chunk)."""

    chunk_offset: tuple[int, ...]
    filter_mask: int
    byte_offset: int
    size: int


def read_buffer() -> mmap.mmap:
    """A buffer for `InputReader` to read runs of chunks into, shared by the inputs of one merge.

    Anonymous memory, whose pages the kernel gives (zeroed) when a read first reaches them: a
    bytearray is zeroed whole when made, 8 MB of page faults and writes (~5 ms in a fresh process)
    however little of it the reads use (runs of chunks are at most one input's size, 2-5 MB in the bench).
    """
    return mmap.mmap(-1, READ_BYTES)


class InputReader:
    """One open input file; use as a context manager. Runs of chunks are read into `buffer`."""

    def __init__(self, path: Path, buffer: mmap.mmap | bytearray) -> None:
        self.path = path
        self._buffer = memoryview(buffer)
        self._h5: h5py.h5f.FileID | None = None
        self._pt: tables.File | None = None
        self._dsets: dict[str, h5py.h5d.DatasetID] = {}
        self._fd: int | None = None

    def __enter__(self) -> InputReader:
        self._h5 = open_read_only(self.path)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
        if self._pt is not None:
            self._pt.close()
        self._dsets.clear()
        if self._h5 is not None:
            self._h5.close()

    def _dset(self, path: str) -> h5py.h5d.DatasetID:
        if path not in self._dsets:
            assert self._h5 is not None, "InputReader used outside its with-block"
            self._dsets[path] = h5py.h5d.open(self._h5, path.encode())
        return self._dsets[path]

    def _damaged(self, exc: Exception, node: str) -> GridpipeError:
        """The error for an input that passed the checks but fails while being merged."""
        return GridpipeError(
            f"{self.path}: {error_reason(exc)} while reading {node}; re-download it or leave it out"
        )

    def stored_chunks(self, path: str) -> list[StoredChunk]:
        """The chunks of `path` that exist in the file, in its chunk index's order (offsets count a user
        block)."""
        infos: list[Any] = []
        try:
            dsid = self._dset(path)
            if hasattr(dsid, "chunk_iter"):
                dsid.chunk_iter(infos.append)  # a builtin callback: no Python frame per chunk
            else:  # pragma: no cover - h5py built against HDF5 < 1.14
                infos = [dsid.get_chunk_info(i) for i in range(dsid.get_num_chunks())]
        except (OSError, tables.HDF5ExtError) as exc:
            raise self._damaged(exc, path) from exc
        return infos

    def read_stored(self, chunks: list[StoredChunk]) -> Iterator[tuple[int, memoryview]]:
        """(filter mask, stored bytes) of each chunk in turn; runs of adjacent chunks are read at once.

        The bytes are a view of the reader's buffer: valid until the next item is asked for.
        """
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        i = 0
        while i < len(chunks):
            first = chunks[i].byte_offset
            j, end = i + 1, first + chunks[i].size
            while (
                j < len(chunks)
                and chunks[j].byte_offset == end
                and end + chunks[j].size - first <= READ_BYTES
            ):
                end, j = end + chunks[j].size, j + 1
            if end - first <= len(self._buffer):
                block = self._buffer[: end - first]
                got = os.preadv(self._fd, [block], first)
            else:  # one chunk larger than the buffer
                block = memoryview(os.pread(self._fd, end - first, first))
                got = len(block)
            if got != end - first:
                raise GridpipeError(
                    f"{self.path}: ends inside a chunk at byte {first}; it changed while merging"
                )
            for chunk in chunks[i:j]:
                at = chunk.byte_offset - first
                yield chunk.filter_mask, block[at : at + chunk.size]
            i = j

    def rows(self, spec: NodeSpec, start: int, stop: int) -> Any:
        """Rows `start:stop` along the main dimension, decoded (a list of rows for VLArrays)."""
        try:
            if spec.kind != "vlarray" and spec.decodable:
                return read_rows(self._dset(spec.path), spec, start, stop)
            if self._pt is None:
                self._pt = tables.open_file(str(self.path), "r")
            return self._pt.get_node(spec.path).read(start, stop)
        except (OSError, tables.HDF5ExtError) as exc:
            raise self._damaged(exc, spec.path) from exc
