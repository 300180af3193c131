"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer

AnalysisPath = typer.Option(
    None,
    "--analysis-path",
    "-a",
    help="Analysis directory (default: the analysis containing the current directory).",
    file_okay=False,
)
JsonOutput = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def analysis_root(path: Path | None) -> Path:
    """Resolve --analysis-path (walks up from the current directory when not given)."""
    from gridpipe.analysis.locate import find_analysis

    return find_analysis(path)
