"""Copy mode: write one real merged file, copying compressed chunks raw wherever the layout allows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tables

from gridpipe.merge.appender import PLAIN_SHARE, ChunkAppender, RowAppender, store_plain_within
from gridpipe.merge.inputs import InputFile
from gridpipe.merge.layout import CONCAT_KINDS, read_layout
from gridpipe.merge.source import InputReader, read_buffer
from gridpipe.merge.tree import create_tree, rebuild_indexes
from gridpipe.merge.writer import give_back_space, reserve_space

Progress = Callable[[int, int], None]


@dataclass
class CopyStats:
    """Rows per concatenated leaf and how they were moved."""

    rows: dict[str, int] = field(default_factory=dict)
    chunks_copied: int = 0
    rows_recoded: int = 0


def write_copy(
    inputs: Sequence[InputFile], dest: Path, *, keep_order: bool, progress: Progress | None
) -> CopyStats:
    """Merge `inputs` (schemas already checked) into the new file `dest`."""
    first = inputs[0].nodes
    totals = {p: sum(i.nodes[p].nrows for i in inputs) for p, s in first.items() if s.kind in CONCAT_KINDS}
    input_bytes = sum(i.size for i in inputs)
    with tables.open_file(str(dest), "w", chunk_cache_size=0) as out:
        indexes, leaves = create_tree(inputs, out, totals)
        out.flush()
        written = read_layout(dest, check=False, writing=out)  # the storage PyTables really gave
        reserve_space(dest, dest.stat().st_size + input_bytes)  # chunks are at most that
        appenders: dict[str, ChunkAppender | RowAppender] = {
            path: RowAppender(leaf)
            if first[path].kind == "vlarray"
            else ChunkAppender(leaf, written[path], keep_order=keep_order)
            for path, leaf in leaves.items()
        }
        chunked = {path: a for path, a in appenders.items() if isinstance(a, ChunkAppender)}
        specs = {path: [i.nodes[path] for i in inputs] for path in chunked}
        store_plain_within(chunked, specs, PLAIN_SHARE * input_bytes)
        buffer = read_buffer()
        for done, inp in enumerate(inputs, start=1):
            with InputReader(inp.path, buffer) as reader:
                for path, appender in appenders.items():
                    appender.add(reader, inp.nodes[path])
            if progress is not None:
                progress(done, len(inputs))
        for appender in appenders.values():
            appender.finish()
    give_back_space(dest)  # PyTables' HDF5 did not see the reserved space appear: it kept it
    if indexes:  # reopened: HDF5 fails to read chunks written with a filter mask in the same session
        with tables.open_file(str(dest), "a") as out:
            rebuild_indexes(out, indexes)
    return CopyStats(
        rows={path: a.rows for path, a in appenders.items()},
        chunks_copied=sum(a.chunks_copied for a in appenders.values()),
        rows_recoded=sum(a.rows_recoded for a in appenders.values()),
    )
