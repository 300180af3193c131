"""Schema check across all inputs before anything is written: same nodes, same columns, same shapes."""

from __future__ import annotations

from collections.abc import Sequence

from gridpipe.core.exceptions import CannotMergeError
from gridpipe.merge.inputs import InputFile
from gridpipe.merge.layout import NodeSpec


def _column_differences(here: NodeSpec, ref: NodeSpec) -> str:
    mine, theirs = dict(here.columns), dict(ref.columns)
    parts: list[str] = []
    missing = [name for name in theirs if name not in mine]
    extra = [name for name in mine if name not in theirs]
    if missing:
        parts.append(f"missing columns {', '.join(missing)}")
    if extra:
        parts.append(f"extra columns {', '.join(extra)}")
    for name, kind in mine.items():
        if name in theirs and theirs[name] != kind:
            label = f"column '{name}'" if name else "atom"
            parts.append(f"{label} is {kind} here but {theirs[name]} there")
    if not parts and here.columns != ref.columns:
        parts.append("columns are in a different order")
    if here.inner_shape != ref.inner_shape or here.maindim != ref.maindim:
        parts.append(f"shape {here.inner_shape} (main dim {here.maindim}) here but {ref.inner_shape} there")
    return "; ".join(parts)


def _node_problem(here: NodeSpec, ref: NodeSpec) -> str:
    if here.kind != ref.kind:
        return f"node {ref.path} is a {here.kind} here but a {ref.kind} there"
    if here.schema == ref.schema:
        return ""
    return f"{here.kind} {ref.path} differs: {_column_differences(here, ref)}"


def _file_problem(inp: InputFile, ref: InputFile) -> str:
    missing = [path for path in ref.nodes if path not in inp.nodes]
    if missing:
        return f"node {missing[0]} is missing here" + (
            f" (and {len(missing) - 1} more)" if missing[1:] else ""
        )
    extra = [path for path in inp.nodes if path not in ref.nodes]
    if extra:
        return f"extra node {extra[0]}" + (f" (and {len(extra) - 1} more)" if extra[1:] else "")
    for path, spec in ref.nodes.items():
        problem = _node_problem(inp.nodes[path], spec)
        if problem:
            return problem
    return ""


def check_schemas(inputs: Sequence[InputFile]) -> None:
    """Raise CannotMergeError naming the first input whose nodes or table schemas differ from the first."""
    ref = inputs[0]
    for inp in inputs[1:]:
        problem = _file_problem(inp, ref)
        if problem:
            raise CannotMergeError(
                f"cannot merge {inp.path}: {problem} (compared with {ref.path}); "
                "merge only files written by the same stage and software version"
            )
