"""Reading byte ranges of input files one range ahead of their use, into two reused buffers.

The merge's raw copy alternates between reading stored chunks and writing them; reads (`preadv`) and
HDF5's chunk writes both release the GIL, so a background thread reading the next range overlaps the
two. Reused buffers avoid faulting in fresh pages for every block. Memory: two blocks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

BLOCK_BYTES = 8 * 2**20


class BlockReader:
    """One read-ahead thread and two buffers, shared by every input of a merge; close when done."""

    def __init__(self, block_bytes: int = BLOCK_BYTES) -> None:
        self.block_bytes = block_bytes
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="gridpipe-merge-read")
        self._buffers = [bytearray(), bytearray()]

    def close(self) -> None:
        """Stop the thread."""
        self._pool.shutdown()

    def _fill(self, fd: int, offset: int, length: int, slot: int) -> memoryview:
        if len(self._buffers[slot]) < length:
            self._buffers[slot] = bytearray(max(length, self.block_bytes))
        view = memoryview(self._buffers[slot])[:length]
        done = 0
        while done < length:
            got = os.preadv(fd, [view[done:]], offset + done)
            if got == 0:
                raise EOFError(
                    f"the file ends at byte {offset + done}, inside a range that runs to {offset + length}"
                )
            done += got
        return view

    def ranges(self, fd: int, ranges: Sequence[tuple[int, int]]) -> Iterator[memoryview]:
        """The bytes of each (offset, length) of `fd` in turn; a view is valid until the next one is asked."""
        if not ranges:
            return
        future: Future[memoryview] = self._pool.submit(self._fill, fd, *ranges[0], 0)
        try:
            for k in range(len(ranges)):
                view = future.result()
                if k + 1 < len(ranges):
                    future = self._pool.submit(self._fill, fd, *ranges[k + 1], (k + 1) % 2)
                yield view
        finally:  # no read may still run into a buffer (or a closed fd) once the caller moves on
            if not future.cancel():
                future.exception()  # waits for it; its error, if any, was raised or no longer matters
