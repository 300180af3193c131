"""`download`, `merge` and `upload-models` (the data issue fills these in)."""

from __future__ import annotations

from pathlib import Path

import typer

from gridpipe.cli.app import app
from gridpipe.cli.options import AnalysisPath, analysis_root
from gridpipe.core.exceptions import NotImplementedYetError


@app.command("download")
def download_cmd(
    analysis_path: Path = AnalysisPath,
    data_type: str = typer.Option(..., "--data-type", help="Folder below data/, e.g. DL2."),
    particle: list[str] = typer.Option([], "--particle", help="Particle to download (repeatable)."),
) -> None:
    """Download, verify, sync-recover and merge the outputs of one data type."""
    analysis_root(analysis_path)
    raise NotImplementedYetError("`gridpipe download` is not implemented yet in this version of gridpipe")


@app.command("upload-models")
def upload_models_cmd(
    analysis_path: Path = AnalysisPath,
    model: list[str] = typer.Option([], "--model", help="Model folder below estimators/ (repeatable)."),
) -> None:
    """Upload model files to the grid and replicate them to the upload sites."""
    analysis_root(analysis_path)
    raise NotImplementedYetError(
        "`gridpipe upload-models` is not implemented yet in this version of gridpipe"
    )
