"""Where the local backend keeps its queue, how many runners it has and how it opens the storage.

Both the backend (in every `gridpipe` command) and its detached executor build this from the analysis's
configs/grid.yaml.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from gridpipe.analysis.config import Strict
from gridpipe.backends.local_start import local_dir_of

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig
    from gridpipe.storage.contract import Storage


class LocalBackendSettings(Strict):
    """`backend.local` of configs/grid.yaml."""

    max_workers: int = Field(0, ge=0, description="Processes at once (0 = number of cores).")


@dataclass(frozen=True)
class LocalSetup:
    """The three settings of an analysis's local backend."""

    analysis_path: Path
    workers: int
    storage_factory: Callable[[], Storage | None]

    @property
    def local_dir(self) -> Path:
        """The queue's folder."""
        return local_dir_of(self.analysis_path)

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> LocalSetup:
        """Workers from `backend.local.max_workers` (0: number of cores); storage as configured."""
        from gridpipe.storage.registry import open_storage

        workers = grid.backend.settings_for("local", LocalBackendSettings).max_workers or os.cpu_count() or 1
        return cls(analysis_path, workers, lambda: open_storage(grid, analysis_path))

    @classmethod
    def for_analysis(cls, analysis_path: Path) -> LocalSetup:
        """Read from the analysis's configs/grid.yaml (the executor's way)."""
        from gridpipe.analysis.config import GridConfig
        from gridpipe.analysis.configio import load_model

        return cls.from_config(load_model(GridConfig, analysis_path / "configs" / "grid.yaml"), analysis_path)
