"""Check a written merge by reopening it: every node present, every row count equal to the inputs' sum."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tables

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
    """Reopen `path` with PyTables; GridpipeError if a node is missing or a row count (or NROWS) differs."""
    with tables.open_file(str(path), "r") as h5:
        for node_path in nodes:
            if node_path not in h5:
                raise GridpipeError(f"{path}: merged file lacks node {node_path}; the merge was not kept")
        for node_path, want in expected.items():
            node = h5.get_node(node_path)
            got = int(node.nrows)
            attr = node._v_attrs["NROWS"] if "NROWS" in node._v_attrs._v_attrnamessys else got
            if got != want or int(attr) != want:
                raise GridpipeError(
                    f"{path}: {node_path} has {got} rows (NROWS {attr}) after merging, expected {want}; "
                    "the merge was not kept"
                )
