"""Open the configured storage through the one plugin loader (`gridpipe.core.plugins`)."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import TYPE_CHECKING

from gridpipe.core.plugins import Group, entry_points_of, load_class
from gridpipe.storage.contract import Storage

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

STORAGE_GROUP = Group.storages.value


def storage_entry_points() -> dict[str, EntryPoint]:
    """Installed storages by name."""
    return entry_points_of(Group.storages)


def storage_class(name: str) -> type[Storage]:
    """The Storage class installed under `name` (UsageError when it is not installed or cannot load)."""
    return load_class(Group.storages, name, Storage)


def open_storage(grid: GridConfig, analysis_path: Path) -> Storage:
    """The storage configured in configs/grid.yaml of the analysis at `analysis_path`."""
    return storage_class(grid.storage.name).from_config(grid, analysis_path)
