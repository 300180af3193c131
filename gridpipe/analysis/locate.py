"""Find the analysis a command works on: the given path, or the one containing the current directory."""

from __future__ import annotations

from pathlib import Path

from gridpipe.analysis.layout import METADATA_FILE
from gridpipe.core.exceptions import AnalysisNotFoundError


def find_analysis(path: Path | None = None) -> Path:
    """The analysis root at or above `path` (default: the current directory), like git finds a repo."""
    start = (path or Path.cwd()).expanduser().resolve()
    given = path is not None
    if given and not start.exists():
        raise AnalysisNotFoundError(start, given=True, exists=False, marker=METADATA_FILE)
    for candidate in (start, *start.parents):
        if (candidate / METADATA_FILE).is_file():
            return candidate
    raise AnalysisNotFoundError(start, given=given, exists=True, marker=METADATA_FILE)
