"""Find the analysis a command works on: the given path, or the one containing the current directory."""

from __future__ import annotations

from pathlib import Path

from gridpipe.analysis.layout import METADATA_FILE
from gridpipe.core.exceptions import AnalysisNotFoundError


def find_analysis(path: Path | None = None) -> Path:
    """The analysis root at or above `path` (default: the current directory), like git finds a repo."""
    start = (path or Path.cwd()).expanduser().resolve()
    if path is not None and not start.exists():
        raise AnalysisNotFoundError(f"--analysis-path {start}: no such directory")
    for candidate in (start, *start.parents):
        if (candidate / METADATA_FILE).is_file():
            return candidate
    where = f"--analysis-path {start}" if path is not None else f"the current directory {start}"
    raise AnalysisNotFoundError(
        f"{where} is not inside a gridpipe analysis (no {METADATA_FILE} found); "
        "run `gridpipe create-analysis NAME` or pass --analysis-path"
    )
