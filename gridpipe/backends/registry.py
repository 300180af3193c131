"""Find backends through the `gridpipe.backends` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from gridpipe.core.exceptions import UsageError

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig
    from gridpipe.backends.contract import Backend

GROUP = "gridpipe.backends"


def available() -> list[str]:
    """Names of the installed backends."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under `name`."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise UsageError(
            f"configs/grid.yaml: key 'backend.name': backend '{name}' is not installed; "
            f"installed: {', '.join(available())}"
        )
    return found[0].load()


def open_backend(grid: GridConfig, analysis_path: Path) -> Backend:
    """The configured backend of an analysis."""
    return backend_class(grid.backend.name).from_config(grid, analysis_path)
