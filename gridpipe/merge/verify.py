"""Check a written merge by reopening it: every node present, every row count equal to the inputs' sum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py

from gridpipe.core.exceptions import GridpipeError
from gridpipe.merge.inputs import InputFile
from gridpipe.merge.layout import CONCAT_KINDS


def expected_rows(inputs: Sequence[InputFile]) -> dict[str, int]:
    """Per concatenated leaf (tables, EArrays, VLArrays), the sum of the inputs' rows."""
    first = inputs[0].nodes
    return {
        path: sum(inp.nodes[path].nrows for inp in inputs)
        for path, spec in first.items()
        if spec.kind in CONCAT_KINDS
    }


def verify_output(path: Path, expected: Mapping[str, int], nodes: Sequence[str]) -> None:
    """Reopen `path`; GridpipeError if a node is missing or a row count (or a table's NROWS) differs.

    Read with h5py, which opens a table without building PyTables' column objects (~8 ms a table);
    a leaf's rows are its extent along PyTables' main dimension (EXTDIM for an EArray, else 0).
    """
    with h5py.File(path, "r") as h5:
        for node_path in nodes:
            if h5.get(node_path, getlink=True) is None:  # links are checked, not followed
                raise GridpipeError(f"{path}: merged file lacks node {node_path}; the merge was not kept")
        for node_path, want in expected.items():
            node = h5[node_path]
            got = int(node.shape[int(node.attrs.get("EXTDIM", 0))])
            attr = node.attrs.get("NROWS", got)
            if got != want or int(attr) != want:
                raise GridpipeError(
                    f"{path}: {node_path} has {got} rows (NROWS {attr}) after merging, expected {want}; "
                    "the merge was not kept"
                )
