"""`gridpipe check`: validate an analysis (configs, workflow, input lists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gridpipe.analysis.config import CONFIG_MODELS, GridConfig
from gridpipe.analysis.configio import load_model
from gridpipe.analysis.create import read_metadata
from gridpipe.analysis.layout import METADATA_FILE, WORKFLOW_FILE
from gridpipe.analysis.lists import scan_list
from gridpipe.analysis.skeleton import load_workflow
from gridpipe.core.exceptions import ConfigError, ConfigErrors


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
    grid: GridConfig | None = None
    for name, model in CONFIG_MODELS.items():
        try:
            loaded = load_model(model, path / "configs" / name)
        except (ConfigError, ConfigErrors) as exc:
            findings += _config_findings(exc)
            continue
        if isinstance(loaded, GridConfig):
            grid = loaded
    try:
        load_workflow(path / WORKFLOW_FILE)
    except (ConfigError, ConfigErrors) as exc:
        findings += _config_findings(exc)
    if grid is not None:
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
