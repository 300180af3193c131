"""Find storages through the `gridpipe.storages` entry-point group, so that a site can add its own."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from gridpipe.core.exceptions import UsageError
from gridpipe.storage.contract import Storage

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

STORAGE_GROUP = "gridpipe.storages"


def storage_entry_points() -> dict[str, EntryPoint]:
    """Installed storages by name."""
    return {ep.name: ep for ep in entry_points(group=STORAGE_GROUP)}


def storage_class(name: str) -> type[Storage]:
    """The Storage class installed under `name`; UsageError naming the installed ones if there is none."""
    installed = storage_entry_points()
    if name not in installed:
        raise UsageError(
            f"configs/grid.yaml key 'storage.name': storage {name!r} is not installed "
            f"(installed: {', '.join(sorted(installed)) or 'none'}); choose one of those or install its plug-in"
        )
    try:
        cls = installed[name].load()
    except Exception as exc:  # a plug-in that fails to import must not crash with a traceback
        raise UsageError(
            f"storage {name!r} ({installed[name].value}) cannot be loaded: {exc}; "
            "install its dependencies (e.g. `pip install gridpipe[dirac]`)"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Storage)):
        raise UsageError(f"storage {name!r} ({installed[name].value}) is not a gridpipe Storage class")
    return cls


def open_storage(grid: GridConfig, analysis_path: Path) -> Storage:
    """The storage configured in configs/grid.yaml of the analysis at `analysis_path`."""
    return storage_class(grid.storage.name).from_config(grid, analysis_path)
