"""The workflow YAML that describes an analysis tree (analysis_skeleton/workflow.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from gridpipe.analysis.config import RelPath, Strict
from gridpipe.analysis.configio import load_model
from gridpipe.analysis.stage import Stage

ListKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TemplateFile(Strict):
    """A file rendered from a template."""

    path: RelPath
    template: RelPath
    executable: bool = False


class Tree(Strict):
    """Folders and rendered files of the analysis."""

    directories: list[RelPath] = Field(default_factory=list)
    files: list[TemplateFile] = Field(default_factory=list)


class WorkflowSpec(Strict):
    """analysis_skeleton/workflow.yaml, or the user's replacement given with --workflow."""

    version: int = Field(1, ge=1, le=1)
    tree: Tree
    inputs: dict[ListKey, RelPath] = Field(default_factory=dict)
    stages: list[Stage] = Field(default_factory=list)

    @model_validator(mode="after")
    def _graph(self) -> WorkflowSpec:
        names = [stage.name for stage in self.stages]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"stage names must be unique: {', '.join(duplicated)}")
        seen: set[str] = set()
        for stage in self.stages:
            for need in (*stage.needs, *stage.models):
                if need not in seen:
                    raise ValueError(
                        f"stage '{stage.name}' needs '{need}', which is not a stage declared before it "
                        f"(declared so far: {', '.join(sorted(seen)) or 'none'})"
                    )
            seen.add(stage.name)
        return self

    def stage(self, name: str) -> Stage:
        """The stage called `name`."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def downloads(self) -> list[tuple[str, list[str]]]:
        """(data type, particles) of every grid stage, in workflow order, for download_and_merge.sh."""
        found: dict[str, list[str]] = {}
        for stage in self.stages:
            if stage.kind == "grid" and stage.data_type:
                particles = found.setdefault(stage.data_type, [])
                particles += [u for u in stage.units if u not in particles]
        return list(found.items())


def load_workflow(path: Path) -> WorkflowSpec:
    """Read and validate a workflow YAML."""
    return load_model(WorkflowSpec, path)
