"""Adler-32 checksums as DIRAC records them (8 lowercase hex digits), and copying while checksumming."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import BinaryIO

BLOCK_SIZE = 1 << 20
"""Bytes read at a time when checksumming a file (zlib releases the GIL while it sums a block)."""
COPY_BLOCK_SIZE = 1 << 17
"""Bytes read at a time when copying and checksumming: small enough that the block stays in the CPU cache
between the read, the checksum and the write (measured ~2x less CPU than 1 MiB blocks)."""


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


def adler32_file(path: Path) -> str:
    """Adler-32 of the file at `path`, read in blocks of BLOCK_SIZE."""
    value = 1
    buffer = bytearray(BLOCK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            value = zlib.adler32(view[:n], value)
    return format_adler32(value)


def copy_with_adler32(src: BinaryIO, dst: BinaryIO) -> tuple[int, str]:
    """Copy unbuffered `src` to buffered `dst` in one pass; return (bytes copied, Adler-32 of them)."""
    value = 1
    size = 0
    buffer = bytearray(COPY_BLOCK_SIZE)
    view = memoryview(buffer)
    while n := src.readinto(buffer):
        block = view[:n]
        value = zlib.adler32(block, value)
        dst.write(block)
        size += n
    return size, format_adler32(value)
