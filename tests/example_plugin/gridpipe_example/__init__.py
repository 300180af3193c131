"""A site's own plugins, outside gridpipe: a backend, a payload and a splitter with their own names and settings.

The package is "installed" by putting this folder on the import path: its dist-info declares the entry
points, exactly as `pip install` would leave them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from gridpipe.backends.local import LocalBackend
from gridpipe.payloads.contract import Payload
from gridpipe.storage.registry import open_storage
from gridpipe.workflow.splitter import Batch, Splitter


class SiteSettings(BaseModel):
    """`backend.site` of configs/grid.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: int = Field(1, ge=1, description="Jobs at once on the site's machine.")
    queue_name: str = Field("short", description="The site's queue (shown in `describe`).")


class SiteBackend(LocalBackend):
    """The site's machine: processes run here, at most `slots` at once."""

    name: ClassVar[str] = "site"
    settings_model: ClassVar[type[BaseModel]] = SiteSettings

    @classmethod
    def from_config(cls, grid, analysis_path: Path) -> SiteBackend:
        settings = grid.backend.settings_for(cls.name, SiteSettings)
        backend = cls(analysis_path, settings.slots, lambda: open_storage(grid, analysis_path))
        backend.queue_name = settings.queue_name
        return backend

    def describe(self, spec) -> str:
        return f"queue {self.queue_name}: {spec.name}"


class EchoPayload(Payload):
    """Writes its inputs' names into its output: `echo` in the stage's command table."""

    name: ClassVar[str] = "echo"


class PairsSplitter(Splitter):
    """Two files per job whatever the analysis says, tokens `pairN`."""

    name: ClassVar[str] = "pairs"

    def split(self, lfns: Sequence[str], n_file_per_job: int) -> list[Batch]:
        ordered = sorted(lfns)
        return [Batch(f"pair{i // 2}", tuple(ordered[i : i + 2])) for i in range(0, len(ordered), 2)]
