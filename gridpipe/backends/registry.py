"""Open the configured backend through the one plugin loader (`gridpipe.core.plugins`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gridpipe.backends.contract import Backend
from gridpipe.core.plugins import Group, available, load_class

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

GROUP = Group.backends.value


def backend_class(name: str) -> type[Backend]:
    """The backend class registered under `name` (UsageError when it is not installed or cannot load)."""
    return load_class(Group.backends, name, Backend)


def open_backend(grid: GridConfig, analysis_path: Path) -> Backend:
    """The configured backend of an analysis."""
    return backend_class(grid.backend.name).from_config(grid, analysis_path)


__all__ = ["GROUP", "available", "backend_class", "open_backend"]
