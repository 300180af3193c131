"""JSON Schemas of the config files, for editors."""

from __future__ import annotations

import json
from pathlib import Path

from gridpipe.analysis.config import AnalysisConfig, GridConfig, ModelConfig, PerformanceConfig
from gridpipe.analysis.skeleton import WorkflowSpec
from gridpipe.core.fsutil import atomic_write_text

SCHEMAS = {
    "grid.schema.json": GridConfig,
    "analysis.schema.json": AnalysisConfig,
    "model.schema.json": ModelConfig,
    "performance.schema.json": PerformanceConfig,
    "workflow.schema.json": WorkflowSpec,
}


def write_schemas(output_dir: Path) -> list[Path]:
    """Write one JSON Schema per config kind into `output_dir`; return the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMAS.items():
        path = output_dir / filename
        atomic_write_text(path, json.dumps(model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
