"""Adler-32 checksums as DIRAC records them (8 lowercase hex digits), and copying while checksumming."""

from __future__ import annotations

import os
import threading
import zlib
from pathlib import Path

BLOCK_SIZE = 1 << 20
"""Bytes read at a time when checksumming a file (zlib releases the GIL while it sums a block)."""
COPY_BLOCK_SIZE = 1 << 17
"""Bytes read at a time when copying and checksumming: small enough that the block stays in the CPU cache
between the read, the checksum and the write (measured ~2x less CPU than 1 MiB blocks)."""

_buffers = threading.local()


def format_adler32(value: int) -> str:
    """The 8-lowercase-hex-digit text of an Adler-32 value, zero-padded."""
    return f"{value & 0xFFFFFFFF:08x}"


def same_adler32(a: str, b: str) -> bool:
    """Whether two Adler-32 texts name the same value (tolerates missing zero-padding and upper case)."""
    try:
        return int(a, 16) == int(b, 16)
    except ValueError:
        return False


def adler32_bytes(data: bytes) -> str:
    """Adler-32 of `data`."""
    return format_adler32(zlib.adler32(data))


def adler32_file(path: Path | str) -> str:
    """Adler-32 of the file at `path`, read in blocks of BLOCK_SIZE."""
    view = _buffer(BLOCK_SIZE)
    value = 1
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, [view]):
            value = zlib.adler32(view[:n], value)
    finally:
        os.close(fd)
    return format_adler32(value)


def copy_with_adler32(src: int, dst: int | None) -> tuple[int, str]:
    """Copy file descriptor `src` to `dst` (None: only read) in one pass; return (bytes, Adler-32 of them).

    Blocks of COPY_BLOCK_SIZE go through one buffer per thread, so a tiny file costs no allocation.
    """
    view = _buffer(COPY_BLOCK_SIZE)
    value = 1
    size = 0
    while n := os.readv(src, [view]):
        block = view[:n]
        value = zlib.adler32(block, value)
        if dst is not None:
            while block:
                block = block[os.write(dst, block) :]
        size += n
    return size, format_adler32(value)


def _buffer(size: int) -> memoryview:
    """This thread's reusable buffer of `size` bytes (one per size)."""
    views: dict[int, memoryview] | None = getattr(_buffers, "views", None)
    if views is None:
        views = _buffers.views = {}
    view = views.get(size)
    if view is None:
        view = views[size] = memoryview(bytearray(size))
    return view
