"""The one backend contract. Backends answer in batches; the engine owns polling, throttling and retries.

Backends are found through the `gridpipe.backends` entry-point group (`gridpipe.core.plugins`); each
entry point names a subclass of `Backend`. A backend owns its settings: `settings_model` validates its
section `backend.<name>` of configs/grid.yaml (read it with `grid.backend.settings_for(name, model)`),
and it declares its capabilities (`shares_file_system`) so that `check` can refuse what cannot work.
"""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel

from gridpipe.analysis.config import NoSettings
from gridpipe.core.models import BackendJob, BackendStatus, JobSpec

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig


class Backend(ABC):
    """Submit many, poll many, cancel many, find by name, fetch logs."""

    name: ClassVar[str]
    settings_model: ClassVar[type[BaseModel]] = NoSettings
    """The model of the backend's section `backend.<name>` of configs/grid.yaml (every key has a default)."""
    shares_file_system: ClassVar[bool] = True
    """Jobs run where this machine's files are (local, Slurm, HTCondor); False for the grid (DIRAC)."""
    max_batch: ClassVar[int] = 1000
    """Most jobs one `submit` call may carry (DIRAC: 20); the engine batches accordingly."""

    @classmethod
    @abstractmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Build the backend from configs/grid.yaml of the analysis at `analysis_path`."""

    @classmethod
    def new_settings(cls, analysis_path: Path) -> BaseModel:
        """The settings `create-analysis` writes for a new analysis at `analysis_path` (the defaults)."""
        return cls.settings_model()

    @classmethod
    def job_python(cls) -> str:
        """The python a payload's `{python}` runs with: this interpreter where files are shared, else `python3`."""
        return sys.executable if cls.shares_file_system else "python3"

    def limit_patience(self, seconds: float) -> None:  # noqa: B027 - optional hook
        """Spend at most about `seconds` on one call, retries included: an interactive command (`status`)
        would rather show what is stored than wait out an outage. Backends without retries ignore it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, pools and files; the backend is not used again. Called by `Analysis.close`."""

    poll_interval: ClassVar[float] = 30.0
    """Seconds between two refreshes of `gridpipe run` when the user does not say."""

    @property
    def capacity(self) -> int:
        """A sensible number of jobs to keep active when the user does not say."""
        return 100

    def wait(self, at_most: int, timeout: float, stop: threading.Event) -> None:
        """Return once at most `at_most` of this analysis' jobs may still be active here, after `timeout`
        seconds, or when `stop` is set. Backends that cannot tell cheaply just wait out the timeout."""
        stop.wait(timeout)

    @abstractmethod
    def submit(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """Submit jobs; return {job name: backend id} for those accepted (raise BackendError if none were)."""

    @abstractmethod
    def poll(self, backend_ids: Sequence[str]) -> list[BackendStatus]:
        """Current status of the given jobs, in as few calls as the backend allows.

        An id the backend does not know is either left out of the answer or reported FAILED with a
        reason, never DONE: the engine only gathers outputs of jobs a backend says ended well.
        """

    @abstractmethod
    def cancel(self, backend_ids: Sequence[str]) -> None:
        """Kill the given jobs."""

    @abstractmethod
    def lookup(self, names: Sequence[str]) -> dict[str, list[BackendJob]]:
        """Jobs the backend knows under these names (reconciliation after a crash)."""

    @abstractmethod
    def logs(self, backend_id: str) -> dict[str, str]:
        """Captured output of a job: {stream or file name: text}."""

    def ensure_running(self) -> None:  # noqa: B027 - optional hook
        """Make sure queued jobs make progress (the local backend restarts its executor)."""

    def describe(self, spec: JobSpec) -> str | None:
        """What the backend would be given for `spec` (DIRAC: the JDL), for dry runs; None if nothing special."""
        return None

    def link(self, backend_id: str) -> str | None:
        """A web page about the job (DIRAC: the web monitor, when configured)."""
        return None

    def submission_blocker(self) -> str | None:
        """Why submitting now would fail half-way (DIRAC: the token is expired or near its end), else None;
        the engine then pauses submission, keeps following its jobs and asks again next cycle."""
        return None

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Raise BackendError if submitting cannot work (DIRAC: expired token); called before planning is recorded."""
