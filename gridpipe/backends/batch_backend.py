"""What the batch backends (Slurm, HTCondor) share as backends: an analysis path and its key, their own
settings section, the jobs to keep active by default, and the rule for job names they hand on.

Their folders on the shared file system are `gridpipe.backends.batch_folders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel

from gridpipe.analysis.naming import job_name_problem
from gridpipe.backends.batch_folders import analysis_key
from gridpipe.backends.contract import Backend
from gridpipe.core.exceptions import BackendError
from gridpipe.core.models import JobSpec

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig


class BatchBackend(Backend):
    """A batch system whose nodes share the analysis's file system; each job runs the job worker."""

    system: ClassVar[str]
    """The batch system's name in messages ("Slurm", "HTCondor")."""
    shares_file_system: ClassVar[bool] = True
    poll_interval: ClassVar[float] = 5.0

    def __init__(self, analysis_path: Path, settings: BaseModel) -> None:
        self.analysis_path = analysis_path.absolute()
        self.key = analysis_key(self.analysis_path)
        """Names the analysis in its batch jobs (markers, attributes)."""

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Settings from `backend.<name>` of configs/grid.yaml; nothing is contacted here."""
        return cls(analysis_path, grid.backend.settings_for(cls.name, cls.settings_model))

    @property
    def capacity(self) -> int:
        """Jobs to keep active when the user does not say (the batch system queues them)."""
        return 1000

    def check_names(self, specs: Sequence[JobSpec]) -> None:
        """BackendError naming the first job whose name the batch system cannot be handed as it is."""
        for spec in specs:
            problem = job_name_problem(spec.name)
            if problem:
                raise BackendError(f"job name {spec.name!r} cannot be given to {self.system}: it {problem}")
