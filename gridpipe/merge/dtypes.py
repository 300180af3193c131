"""Column types as the schema check compares them, and sharing of equal values across many inputs."""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

import h5py
import numpy as np

T = TypeVar("T")


class Interner:
    """Hands back one shared copy of equal values, so that thousands of input layouts cost little."""

    def __init__(self) -> None:
        self._seen: dict[object, object] = {}

    def __call__(self, value: T) -> T:
        """The first value seen equal to `value`."""
        return self._seen.setdefault(value, value)  # type: ignore[return-value]


@lru_cache(maxsize=256)
def h5_types(encoded: bytes) -> tuple[np.dtype, h5py.h5t.TypeID]:
    """The numpy dtype and h5py memory type of an encoded on-disk HDF5 type.

    h5py derives both anew for every dataset and every read (~0.4 ms each for a 35-column table),
    which dominated screening and reading many small inputs; inputs of one layout share one type.
    TypeError when h5py has no numpy equivalent (e.g. PyTables' Time64).
    """
    dtype = h5py.h5t.decode(encoded).dtype
    return dtype, h5py.h5t.py_create(dtype)


def type_text(dtype: np.dtype) -> str:
    """Byte-order free short text of a column type: 'f4', 'S8', 'i8[3]', 'vlen:i2'."""
    vlen = h5py.check_vlen_dtype(dtype)
    if vlen is not None:
        return f"vlen:{type_text(np.dtype(vlen))}"
    base = dtype.base.str[1:]
    return f"{base}{list(dtype.shape)}" if dtype.shape else base


def column_types(dtype: np.dtype, prefix: str = "") -> tuple[tuple[str, str], ...]:
    """Flattened (column path, type) pairs of a (possibly nested) compound dtype, in stored order."""
    if dtype.names is None:
        return ((prefix, type_text(dtype)),)
    out: list[tuple[str, str]] = []
    for name in dtype.names:
        sub = dtype.fields[name][0]
        path = f"{prefix}/{name}" if prefix else name
        out.extend(column_types(sub, path) if sub.names else ((path, type_text(sub)),))
    return tuple(out)


def columns_of(dtype: np.dtype, table: bool) -> tuple[tuple[str, str], ...]:
    """A table's `column_types`, or an array's one type as a single unnamed column."""
    return column_types(dtype) if table else (("", type_text(dtype)),)


@lru_cache(maxsize=256)
def h5_columns(encoded: bytes, table: bool) -> tuple[tuple[str, str], ...]:
    """`columns_of` the dtype of an encoded on-disk HDF5 type (cached, as `h5_types`)."""
    return columns_of(h5_types(encoded)[0], table)
