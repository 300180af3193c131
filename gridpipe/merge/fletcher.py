"""HDF5's Fletcher-32 checksum, as its filter stores it after a chunk's bytes."""

from __future__ import annotations

import h5py
import numpy as np

FLETCHER32 = int(h5py.h5z.FILTER_FLETCHER32)


def fletcher32(data: bytes | memoryview | np.ndarray) -> int:
    """HDF5's Fletcher-32 of `data` (H5_checksum_fletcher32: big-endian 16-bit words, sums mod 65535)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    words = buf[: buf.size - buf.size % 2].view(">u2").astype(np.int64)
    if buf.size % 2:
        words = np.append(words, np.int64(buf[-1]) << 8)
    weights = np.arange(words.size, 0, -1, dtype=np.int64)
    return (_fold(int(words @ weights)) << 16) | _fold(int(words.sum()))


def _fold(total: int) -> int:
    """The 16-bit value HDF5's end-around-carry folding leaves: 0 only for 0, else 1..65535."""
    return 0 if total == 0 else (total - 1) % 65535 + 1


def checksum_matches(stored: bytes | memoryview) -> bool:
    """Whether a chunk's stored bytes end with the Fletcher-32 of the bytes before (little-endian)."""
    return len(stored) >= 4 and fletcher32(memoryview(stored)[:-4]) == int.from_bytes(stored[-4:], "little")
