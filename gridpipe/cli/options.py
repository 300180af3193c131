"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from gridpipe.service.context import Analysis

AnalysisPath = typer.Option(
    None,
    "--analysis-path",
    "-a",
    help="Analysis directory (default: the analysis containing the current directory).",
    file_okay=False,
)
JsonOutput = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


_given: ContextVar[Analysis | None] = ContextVar("gridpipe_cli_analysis", default=None)


@contextmanager
def analysis_given(analysis: Analysis | None) -> Iterator[None]:
    """While inside, commands without --analysis-path use `analysis` (None: the usual search)."""
    token = _given.set(analysis)
    try:
        yield
    finally:
        _given.reset(token)


def analysis_root(path: Path | None) -> Path:
    """Resolve --analysis-path (the analysis handed over, else walks up from the current directory)."""
    given = _given.get()
    if path is None and given is not None:
        return given.path
    from gridpipe.analysis.locate import find_analysis

    return find_analysis(path)


def open_analysis(path: Path | None, *, validated: bool = True) -> Analysis:
    """The analysis at --analysis-path (or the one handed over); use it in a `with` block. Its configs are
    validated now, or with `validated=False` when first used (`Analysis.open`)."""
    given = _given.get()
    if path is None and given is not None:
        return given
    from gridpipe.service.context import Analysis

    return Analysis.open(analysis_root(path), validated=validated)
