"""The list of analyses the background service drives (`analyses.json` in its state folder), with the run
options each was handed over with. Written atomically (0600); read again after a restart or a kill -9."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gridpipe.core.exceptions import ConfigError
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.core.timeutil import isoformat, utcnow


class DriveOptions(BaseModel):
    """The options of `gridpipe run` an analysis is driven with (None: grid.yaml's, else the backend's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_active: int | None = Field(None, ge=1, description="Most jobs active at once.")
    max_attempts: int | None = Field(None, ge=1, description="Submissions of a job before it fails.")
    poll_interval: float | None = Field(None, ge=0.05, le=3600, description="Seconds between refreshes.")


class DrivenAnalysis(BaseModel):
    """One analysis in the service's list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    options: DriveOptions = DriveOptions()
    paused: bool = False
    added: str = Field(default_factory=lambda: isoformat(utcnow()))

    @property
    def id(self) -> str:
        """Its id in the API (from its path)."""
        return analysis_id(Path(self.path))


_LIST = TypeAdapter(list[DrivenAnalysis])


def analysis_id(path: Path) -> str:
    """A short stable id for the analysis at the absolute `path` (the API's `/v1/analyses/{id}`)."""
    return hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def load_driven(path: Path) -> list[DrivenAnalysis]:
    """The list as saved (empty when there is none yet); a damaged list is an error naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        return _LIST.validate_python(json.loads(text))
    except ValueError as exc:
        raise ConfigError(
            path, f"not a list of analyses ({' '.join(str(exc).split())[:200]}); fix or remove it"
        ) from exc


def save_driven(path: Path, entries: list[DrivenAnalysis]) -> None:
    """Write the list atomically, 0600."""
    atomic_write_text(path, _LIST.dump_json(entries, indent=2).decode() + "\n", mode=0o600)
