"""Small DL2-like HDF5 files (PyTables) for download and merge tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tables

ROWS = 7
"""Rows per file."""


class Event(tables.IsDescription):
    obs_id = tables.Int64Col()
    event_id = tables.Int64Col()
    reco_energy = tables.Float64Col()


def write_dl2(path: Path, run: int) -> None:
    """A compressed `/dl2/events` table of ROWS rows whose obs_id is `run`."""
    with tables.open_file(path, "w") as h5:
        table = h5.create_table(
            "/dl2", "events", Event, createparents=True, filters=tables.Filters(complevel=5, complib="zlib")
        )
        rows = np.zeros(ROWS, dtype=table.dtype)
        rows["obs_id"] = run
        rows["event_id"] = np.arange(ROWS)
        rows["reco_energy"] = np.linspace(0.1, 10, ROWS) * run
        table.append(rows)


def h5_with_tables(path: Path, nodes: list[str] | tuple[str, ...], status: str | None = None) -> Path:
    """An HDF5 file holding a small table at each node path, and `status` at its root when given (what
    the payloads' output checks look for)."""
    with tables.open_file(path, "w") as h5:
        for node in nodes:
            where, name = node.rsplit("/", 1)
            h5.create_table(where or "/", name, obj=np.zeros(3, dtype=[("x", "f4")]), createparents=True)
        if status is not None:
            h5.root._v_attrs.status = status
    return path
