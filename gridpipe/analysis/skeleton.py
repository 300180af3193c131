"""The workflow YAML that describes an analysis tree (analysis_skeleton/workflow.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints

from gridpipe.analysis.config import RelPath, Strict
from gridpipe.analysis.configio import load_model

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


class Download(Strict):
    """One data type (folder below data/) and its particles."""

    data_type: RelPath
    particles: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]+$")]] = Field(min_length=1)


class WorkflowSpec(Strict):
    """analysis_skeleton/workflow.yaml, or the user's replacement given with --workflow."""

    version: int = Field(1, ge=1, le=1)
    tree: Tree
    inputs: dict[ListKey, RelPath] = Field(default_factory=dict)
    downloads: list[Download] = Field(default_factory=list)


def load_workflow(path: Path) -> WorkflowSpec:
    """Read and validate a workflow YAML."""
    return load_model(WorkflowSpec, path)
