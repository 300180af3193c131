"""HDF5 helpers of the demo payload: atomic files, compressed chunked tables, reading tables whole."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tables

from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.fsutil import temp_path_for

FILTERS = tables.Filters(complevel=5, complib="zlib", shuffle=True, fletcher32=False)
"""Compression of every table the demo writes (zlib is readable by any HDF5 build)."""


class InputFileError(GridpipeError):
    """An input file is missing, unreadable or of the wrong kind (exit 1: a rerun after staging may help)."""


FILE_MODE = 0o644
"""Permissions of every file the demo writes (temp files start as 0600)."""

CHUNK_ROWS = 1024
"""Rows per HDF5 chunk of every table (explicit, so merged files keep one chunk layout)."""


@contextmanager
def atomic_h5(path: Path, title: str = "") -> Iterator[tables.File]:
    """Open a new HDF5 file that appears as `path` only when the block ends without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with tables.open_file(tmp, mode="w", title=title) as h5:
            yield h5
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_table(h5: tables.File, where: str, name: str, rows: np.ndarray, title: str = "") -> tables.Table:
    """Create the compressed, chunked, appendable table `where/name` holding `rows` (may be empty)."""
    table = h5.create_table(
        where,
        name,
        description=rows.dtype,
        title=title,
        filters=FILTERS,
        chunkshape=(CHUNK_ROWS,),
        createparents=True,
        track_times=False,
    )
    if len(rows):
        table.append(rows)
    table.flush()
    return table


@contextmanager
def open_input(path: Path) -> Iterator[tables.File]:
    """Open an input HDF5 file for reading; InputFileError naming the file if it is missing or not HDF5."""
    if not path.is_file():
        raise InputFileError(f"{path}: input file not found; check the path given on the command line")
    try:
        h5 = tables.open_file(path, mode="r")
    except (OSError, tables.HDF5ExtError) as exc:
        raise InputFileError(
            f"{path}: not a readable HDF5 file ({type(exc).__name__}); regenerate it"
        ) from None
    try:
        yield h5
    finally:
        h5.close()


def read_table(h5: tables.File, node: str) -> np.ndarray:
    """All rows of the table at `node`; InputFileError naming the file and node if it is absent."""
    if node not in h5:
        raise InputFileError(f"{h5.filename}: table '{node}' is missing; is this the right kind of file?")
    table = h5.get_node(node)
    if not isinstance(table, tables.Table):
        raise InputFileError(f"{h5.filename}: '{node}' is not a table")
    return table.read()


def concat(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Concatenate structured arrays of one dtype (an empty array of `dtype` for none)."""
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
