"""Locate the templates and the analysis skeleton in a wheel or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _data_dir(name: str) -> Path:
    packaged = Path(str(resources.files("gridpipe"))) / "_data" / name
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[2] / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"gridpipe data folder '{name}' is missing from the installation")


def templates_dir() -> Path:
    """Folder of the Jinja2 templates."""
    return _data_dir("templates")


def skeleton_dir() -> Path:
    """Folder of the default analysis skeleton (workflow YAML and static files)."""
    return _data_dir("analysis_skeleton")
