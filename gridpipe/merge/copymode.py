"""Copy mode: write one real merged file, copying compressed chunks raw wherever the layout allows.

The leaves h5py can write (main dimension 0, types and filters h5py knows) are written in one pass
through h5py, on a paged file with a page buffer when the merge is large (`gridpipe.merge.space`);
the others (VLArrays, PyTables-only types or filters, EArrays grown along another dimension) in a
second pass through PyTables. Each leaf is written whole in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tables

from gridpipe.merge.appender import PLAIN_SHARE, ChunkAppender, RowAppender, store_plain_within
from gridpipe.merge.inputs import InputFile
from gridpipe.merge.layout import CONCAT_KINDS, NodeSpec, read_layout
from gridpipe.merge.source import InputReader
from gridpipe.merge.space import create_output, open_output, page_size_for, reserve_space
from gridpipe.merge.tree import create_tree, rebuild_indexes
from gridpipe.merge.writer import H5Leaf, TablesLeaf

Progress = Callable[[int, int], None]
Appenders = Mapping[str, ChunkAppender | RowAppender]


@dataclass
class CopyStats:
    """Rows per concatenated leaf and how they were moved."""

    rows: dict[str, int] = field(default_factory=dict)
    chunks_copied: int = 0
    rows_recoded: int = 0

    def add(self, appenders: Appenders) -> None:
        """Count what `appenders` did."""
        self.rows.update((path, a.rows) for path, a in appenders.items())
        self.chunks_copied += sum(a.chunks_copied for a in appenders.values())
        self.rows_recoded += sum(a.rows_recoded for a in appenders.values())


def _h5py_writes(spec: NodeSpec) -> bool:
    return spec.kind in ("table", "earray") and spec.maindim == 0 and spec.decodable


def _stored_chunks(inputs: Sequence[InputFile]) -> int:
    """About how many chunks the inputs' concatenated leaves store."""
    return sum(
        math.ceil(spec.nrows / spec.chunkshape[spec.maindim])
        for inp in inputs
        for spec in inp.nodes.values()
        if spec.kind in CONCAT_KINDS and spec.chunkshape
    )


class _Passes:
    """Runs the passes over the inputs and shares the plain-chunk budget and progress between them."""

    def __init__(self, inputs: Sequence[InputFile], passes: int, progress: Progress | None) -> None:
        self.inputs, self.progress = inputs, progress
        self.budget = PLAIN_SHARE * sum(i.size for i in inputs)
        self.done, self.total = 0, passes * len(inputs)
        self.stats = CopyStats()

    def run(self, appenders: Appenders) -> None:
        """Append every input's rows of the leaves of `appenders`, then finish them."""
        chunked = {path: a for path, a in appenders.items() if isinstance(a, ChunkAppender)}
        specs = {path: [i.nodes[path] for i in self.inputs] for path in chunked}
        self.budget -= store_plain_within(chunked, specs, self.budget)
        for inp in self.inputs:
            with InputReader(inp.path) as reader:
                for path, appender in appenders.items():
                    appender.add(reader, inp.nodes[path])
            self.done += 1
            if self.progress is not None:
                self.progress(self.done, self.total)
        for appender in appenders.values():
            appender.finish()
        self.stats.add(appenders)


def write_copy(
    inputs: Sequence[InputFile], dest: Path, *, keep_order: bool, progress: Progress | None
) -> CopyStats:
    """Merge `inputs` (schemas already checked) into the new file `dest`."""
    first = inputs[0].nodes
    totals = {p: sum(i.nodes[p].nrows for i in inputs) for p, s in first.items() if s.kind in CONCAT_KINDS}
    input_bytes = sum(i.size for i in inputs)
    page = page_size_for(input_bytes, _stored_chunks(inputs))
    create_output(dest, page)
    indexes = create_tree(inputs, dest, totals)
    written = read_layout(dest, check=False)  # the storage PyTables really gave each output leaf
    reserve_space(dest, dest.stat().st_size + input_bytes)  # chunks are at most that
    h5_paths = [path for path in totals if _h5py_writes(written[path])]
    pt_paths = [path for path in totals if path not in h5_paths]
    passes = _Passes(inputs, bool(h5_paths) + bool(pt_paths), progress)
    if h5_paths:
        with open_output(dest, page) as out:
            passes.run(
                {
                    path: ChunkAppender(
                        H5Leaf(out[path], written[path].kind == "table"), written[path], keep_order=keep_order
                    )
                    for path in h5_paths
                }
            )
    if pt_paths:
        with tables.open_file(str(dest), "a", chunk_cache_size=0) as out:
            passes.run(
                {
                    path: RowAppender(out.get_node(path))
                    if first[path].kind == "vlarray"
                    else ChunkAppender(TablesLeaf(out.get_node(path)), written[path], keep_order=keep_order)
                    for path in pt_paths
                }
            )
    if indexes:  # reopened: HDF5 fails to read chunks written with a filter mask in the same session
        with tables.open_file(str(dest), "a") as out:
            rebuild_indexes(out, indexes)
    return passes.stats
