"""An opened analysis: its configs, workflow, job store, backend and storage (opened when first used).

with Analysis.open(path) as an:
    ...  # the store, backends and storage opened on the way are closed on the way out
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from gridpipe.analysis.layout import GRID_FILE, WORKFLOW_FILE
from gridpipe.store import JobStore

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig
    from gridpipe.analysis.glance import Glance
    from gridpipe.analysis.skeleton import WorkflowSpec
    from gridpipe.analysis.stage import Stage
    from gridpipe.backends.contract import Backend
    from gridpipe.storage.contract import Storage
    from gridpipe.workflow.planner import PlanContext


@dataclass
class Analysis:
    """Everything the engine needs about one analysis."""

    path: Path
    _opened: ExitStack = field(default_factory=ExitStack, repr=False)

    @classmethod
    def open(cls, path: Path, *, validated: bool = True) -> Analysis:
        """The analysis at `path`, its configs read and validated now (ConfigErrors name file, key and line),
        or, with `validated=False`, when first used: `status` shows what is stored without them unless it
        asks a backend."""
        an = cls(path=path)
        if validated:
            for config in ("grid", "workflow"):
                getattr(an, config)
        return an

    @cached_property
    def grid(self) -> GridConfig:
        """configs/grid.yaml, validated."""
        from gridpipe.analysis.config import GridConfig
        from gridpipe.analysis.configio import load_model

        return load_model(GridConfig, self.path / GRID_FILE)

    @cached_property
    def workflow(self) -> WorkflowSpec:
        """configs/workflow.yaml, validated (the Python API replaces it with its own stages)."""
        from gridpipe.analysis.skeleton import load_workflow

        return load_workflow(self.path / WORKFLOW_FILE)

    def glance(self) -> Glance:
        """Its name, its backend's and its stages': from the validated configs when they were read, else as
        the files give them (validated where the files do not hold them as text)."""
        from gridpipe.analysis.glance import Glance, glance

        if "grid" not in self.__dict__ or "workflow" not in self.__dict__:
            found = glance(self.path)
            if found is not None:
                return found
        stages = tuple(stage.name for stage in self.workflow.stages)
        return Glance(self.grid.analysis_name, self.grid.backend.name, stages)

    @cached_property
    def store(self) -> JobStore:
        """The job archive."""
        store = JobStore.for_analysis(self.path)
        self._opened.callback(store.close)
        return store

    @cached_property
    def backend(self) -> Backend:
        """The configured backend."""
        from gridpipe.backends.registry import open_backend

        backend = open_backend(self.grid, self.path)
        self._opened.callback(backend.close)
        return backend

    @cached_property
    def local_backend(self) -> Backend:
        """The local backend, where local stages (models, performance) always run."""
        if self.grid.backend.name == "local":
            return self.backend
        from gridpipe.backends.local import LocalBackend

        backend = LocalBackend.from_config(self.grid, self.path)
        self._opened.callback(backend.close)
        return backend

    def backend_for(self, where: str) -> Backend:
        """The backend of grid jobs (as configured) or of local jobs (always local)."""
        return self.local_backend if where == "local" else self.backend

    def backend_name_of(self, where: str, named: str | None) -> str:
        """The name of the backend a job runs on: the one its stage names, else by kind."""
        return named or ("local" if where == "local" else self.grid.backend.name)

    def backend_of_stage(self, stage: Stage) -> Backend:
        """The backend a stage's jobs run on (workflow.yaml `backend:`, else by kind)."""
        return self.backend_named(self.backend_name_of(stage.kind, stage.backend))

    def backend_named(self, name: str) -> Backend:
        """The backend called `name` (the one a job was submitted to), opened once."""
        if name == self.grid.backend.name:
            return self.backend
        if name == "local":
            return self.local_backend
        opened = self.__dict__.setdefault("other_backends", {})
        if name not in opened:
            from gridpipe.backends.registry import backend_class

            backend = backend_class(name).from_config(self.grid, self.path)
            self._opened.callback(backend.close)
            opened[name] = backend
        return opened[name]  # type: ignore[no-any-return]

    @cached_property
    def storage(self) -> Storage:
        """The configured storage."""
        from gridpipe.storage.registry import open_storage

        storage = open_storage(self.grid, self.path)
        self._opened.callback(storage.close)
        return storage

    @property
    def grid_dir(self) -> str:
        """LFN folder of the analysis on the grid."""
        from gridpipe.analysis.naming import join_lfn

        return join_lfn(self.grid.grid.home, self.grid.grid.path, self.grid.analysis_name)

    def merged_path(self, stage: Stage, particle: str) -> Path:
        """Local path of the merged output of a grid stage's unit."""
        from gridpipe.workflow.commands import fill
        from gridpipe.workflow.planner import checked_file_name

        values = {
            "particle": particle,
            "unit": particle,
            "mode": self.grid.payload.mode,
            "analysis": self.grid.analysis_name,
        }
        template = stage.merged or f"{stage.name}_{{particle}}_merged.h5"
        name = checked_file_name(fill(template, values, f"stage '{stage.name}'"), stage, "merged")
        return self.path / "data" / (stage.data_type or stage.name) / particle / name

    def plan_context(self) -> PlanContext:
        """Values every plan needs."""
        from gridpipe.workflow.planner import PlanContext

        merged = {
            s.name: {p: str(self.merged_path(s, p)) for p in s.units}
            for s in self.workflow.stages
            if s.kind == "grid"
        }
        from gridpipe.backends.registry import backend_class

        python = backend_class(self.grid.backend.name).job_python()
        stage_python = {
            s.name: backend_class(s.backend).job_python()
            for s in self.workflow.stages
            if s.backend is not None
        }
        return PlanContext(
            analysis=self.grid.analysis_name,
            analysis_path=self.path,
            grid_dir=self.grid_dir,
            mode=self.grid.payload.mode,
            payload=self.grid.payload.name,
            python=python,
            n_file_per_job=self.grid.jobs.n_file_per_job,
            merged=merged,
            stage_python=stage_python,
        )

    def close(self) -> None:
        """Close what was opened (backends, storage, then the store, the reverse of their opening); every
        one is closed even if another fails. The analysis may be used again: it reopens them."""
        try:
            self._opened.close()
        finally:
            for name in ("store", "backend", "local_backend", "other_backends", "storage"):
                self.__dict__.pop(name, None)

    def __enter__(self) -> Analysis:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
