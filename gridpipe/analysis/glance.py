"""The names `status` shows above its counts (the analysis, its backend, its stages in order), read from the
config files as written, without validating them.

Validating grid.yaml and workflow.yaml (pydantic models, the installed plugins and their settings) costs a
short command such as `status` about a fifth of its time, for three names it only prints. A command that
acts on the analysis, or a `status` that asks a backend, validates them (`service.context.Analysis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridpipe.analysis.configio import read_yaml
from gridpipe.analysis.layout import GRID_FILE, WORKFLOW_FILE


@dataclass(frozen=True)
class Glance:
    """The analysis's name, its backend's name and its stages' names, in workflow order."""

    analysis: str
    backend: str
    stages: tuple[str, ...]


def _text(node: Any, *keys: str) -> str | None:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) else None


def glance(path: Path) -> Glance | None:
    """The names as the files of the analysis at `path` give them, or None where a file does not hold them
    as text (its validation then says what is wrong). A file that cannot be read or parsed raises the
    ConfigError that validating it would raise."""
    grid, _ = read_yaml(path / GRID_FILE)
    workflow, _ = read_yaml(path / WORKFLOW_FILE)
    analysis, backend = _text(grid, "analysis_name"), _text(grid, "backend", "name")
    stages = workflow.get("stages", []) if isinstance(workflow, dict) else None
    if analysis is None or backend is None or not isinstance(stages, list):
        return None
    names = [_text(stage, "name") for stage in stages]
    if any(name is None for name in names):
        return None
    return Glance(analysis, backend, tuple(name for name in names if name is not None))
