"""Screening of merge inputs: keep the good files, name the empty, corrupt and unreadable ones."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridpipe.core.exceptions import GridpipeError
from gridpipe.merge.layout import Interner, NodeSpec, read_layout
from gridpipe.merge.report import SkippedInput


@dataclass(frozen=True)
class InputFile:
    """A readable input: its path, size in bytes and the spec of every node."""

    path: Path
    size: int
    nodes: dict[str, NodeSpec] = field(hash=False)


def error_reason(exc: Exception) -> str:
    """Why reading an input failed, in a few words: 'corrupt: ...' or 'unreadable: ...'."""
    if isinstance(exc, FileNotFoundError):
        return "unreadable: file not found"
    if isinstance(exc, PermissionError):
        return "unreadable: permission denied"
    text = " ".join(str(exc).split()) or type(exc).__name__
    inner = re.search(r"\(([^()]*)\)$", text)  # h5py: "Unable to open file (truncated file: ...)"
    detail = inner.group(1) if inner else text
    return f"unreadable: {detail}" if "unable to lock" in detail else f"corrupt: {detail}"


def inspect_input(path: Path, share: Interner | None = None) -> InputFile | SkippedInput:
    """Read the layout of one input, or say why it cannot be merged."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            return SkippedInput(path, "empty (0 bytes)")
        nodes = read_layout(path, share=share)
    # A damaged file can fail inside HDF5, PyTables or numpy in many ways; each becomes a reason.
    except Exception as exc:
        return SkippedInput(path, error_reason(exc))
    if not nodes:
        return SkippedInput(path, "empty (no nodes)")
    return InputFile(path, size, nodes)


def screen_inputs(paths: Sequence[Path], *, strict: bool) -> tuple[list[InputFile], list[SkippedInput]]:
    """Split `paths` into good inputs and skipped ones; with `strict` the first bad input is an error."""
    good: list[InputFile] = []
    skipped: list[SkippedInput] = []
    share = Interner()
    for path in paths:
        result = inspect_input(path, share)
        if isinstance(result, InputFile):
            good.append(result)
            continue
        if strict:
            raise GridpipeError(f"{path}: {result.reason}; re-download it or merge without strict to skip it")
        skipped.append(result)
    if not good:
        raise GridpipeError(
            f"none of the {len(paths)} inputs is a readable HDF5 file with data "
            f"(first: {skipped[0].path}: {skipped[0].reason})"
        )
    return good, skipped
