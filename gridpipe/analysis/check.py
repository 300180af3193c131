"""`gridpipe check`: validate an analysis (configs, workflow, input lists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gridpipe.analysis.config import CONFIG_MODELS, GridConfig
from gridpipe.analysis.configio import load_model, read_yaml
from gridpipe.analysis.create import read_metadata
from gridpipe.analysis.layout import METADATA_FILE, WORKFLOW_FILE
from gridpipe.analysis.legacy import migrate_grid
from gridpipe.analysis.lists import scan_list
from gridpipe.analysis.skeleton import WorkflowSpec, load_workflow
from gridpipe.core.exceptions import ConfigError, ConfigErrors, UsageError
from gridpipe.core.plugins import Group, load


@dataclass(frozen=True)
class Finding:
    """One result of a check: an error makes the analysis unusable, a warning does not."""

    level: Literal["error", "warning"]
    file: str
    message: str
    line: int | None = None

    def text(self) -> str:
        """`file:line: message`."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


def _config_findings(exc: ConfigError | ConfigErrors) -> list[Finding]:
    errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    return [Finding("error", e.file, e.message, e.line) for e in errors]


def check_analysis(path: Path) -> list[Finding]:
    """Every problem of the analysis at `path`, errors first."""
    findings: list[Finding] = []
    if not (path / METADATA_FILE).is_file():
        findings.append(Finding("error", str(path / METADATA_FILE), "missing; recreate the analysis"))
    else:
        try:
            read_metadata(path)
        except ConfigError as exc:
            findings += _config_findings(exc)
    workflow = None
    try:
        workflow = load_workflow(path / WORKFLOW_FILE)
    except (ConfigError, ConfigErrors) as exc:
        findings += _config_findings(exc)
    made = {item.path for item in workflow.tree.files} if workflow is not None else None
    grid: GridConfig | None = None
    for name, model in CONFIG_MODELS.items():
        if made is not None and name != "grid.yaml" and f"configs/{name}" not in made:
            continue  # this workflow's tree has no such file (a custom workflow): nothing to check
        try:
            loaded = load_model(model, path / "configs" / name)
        except (ConfigError, ConfigErrors) as exc:
            findings += _config_findings(exc)
            continue
        if isinstance(loaded, GridConfig):
            grid = loaded
    if grid is not None and workflow is not None:
        findings += _payload_findings(grid, workflow, path / WORKFLOW_FILE)
    if grid is not None:
        findings += _combination_findings(grid, path / "configs/grid.yaml")
        findings += _old_key_findings(path / "configs/grid.yaml")
        if grid.analysis_name != path.name:
            findings.append(
                Finding(
                    "warning",
                    str(path / "configs/grid.yaml"),
                    f"analysis_name {grid.analysis_name!r} differs from the folder name "
                    f"{path.name!r}; job names use analysis_name",
                )
            )
        for key, rel in grid.inputs.items():
            findings += _list_findings(path / rel, key)
    return sorted(findings, key=lambda f: f.level != "error")


def combination_problem(grid: GridConfig) -> str | None:
    """Why the chosen backend cannot work with the chosen storage, from what the two plugins declare."""
    try:
        backend = load(Group.backends, grid.backend.name)
        storage = load(Group.storages, grid.storage.name)
    except UsageError:
        return None  # reported on backend.name / storage.name already
    if getattr(backend, "shares_file_system", True) or getattr(storage, "reachable_from_grid", True):
        return None
    return (
        f"backend {grid.backend.name!r} runs jobs on other machines, which cannot reach storage "
        f"{grid.storage.name!r} (a folder on this one): every job would end without its outputs in storage; "
        "choose a storage reachable from grid jobs or a backend that shares this machine's files"
    )


def _combination_findings(grid: GridConfig, file: Path) -> list[Finding]:
    problem = combination_problem(grid)
    if problem is None:
        return []
    _, lines = read_yaml(file)
    return [Finding("error", str(file), f"key 'storage.name': {problem}", lines.get(("storage", "name")))]


def _payload_findings(grid: GridConfig, workflow: WorkflowSpec, file: Path) -> list[Finding]:
    """The chosen payload checks every stage's command lines before any job exists."""
    try:
        payload = load(Group.payloads, grid.payload.name)()
    except UsageError as exc:
        return [Finding("error", str(file.parent / "grid.yaml"), exc.detail)]
    return [
        Finding("error", str(file), problem)
        for stage in workflow.stages
        for problem in payload.check(stage.name, stage.command, stage.placeholders())
    ]


def _old_key_findings(file: Path) -> list[Finding]:
    """Keys read from where older gridpipe versions wrote them: still work, but say where they go now."""
    data, lines = read_yaml(file)
    if not isinstance(data, dict):
        return []
    return [
        Finding(
            "warning",
            str(file),
            f"key '{old}': read from its old place; move it to '{new}'",
            lines.get(tuple(old.split("."))),
        )
        for old, new in migrate_grid(data)[1]
    ]


def _list_findings(list_path: Path, key: str) -> list[Finding]:
    try:
        lfns, errors, duplicates = scan_list(list_path)
    except ConfigError as exc:
        return [Finding("error", exc.file, exc.message, exc.line)]
    found = [
        Finding("error", str(list_path), f"{e.message}; write one absolute LFN per line", e.line)
        for e in errors
    ]
    found += [Finding("warning", str(list_path), d.message, d.line) for d in duplicates]
    if not lfns and not errors:
        found.append(Finding("warning", str(list_path), f"input list '{key}' is empty; add one LFN per line"))
    return found
