"""JSON Schemas of the config files, for editors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gridpipe.analysis.config import (
    AnalysisConfig,
    BackendSection,
    GridConfig,
    ModelConfig,
    PayloadSection,
    PerformanceConfig,
    StorageSection,
)
from gridpipe.analysis.sections import PluginSection
from gridpipe.analysis.skeleton import WorkflowSpec
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.core.plugins import Group, available

_CLOSED = ConfigDict(extra="forbid")


def _choice(names: list[str]) -> Any:
    return Literal[tuple(names)] if names else str  # type: ignore[valid-type]


def _plugin_schema_model(section: type[PluginSection]) -> type[BaseModel]:
    """`section` as a closed model for the schema: `name` one of the installed plugins, one optional key
    per plugin that loads, holding its settings."""
    fields: dict[str, Any] = {
        "name": (
            _choice(available(section.group)),
            Field(description=section.model_fields["name"].description),
        ),
    }
    fields |= {key: (field.annotation, field) for key, field in section.model_fields.items() if key != "name"}
    for name, model in section.plugin_models().items():
        fields[name] = (
            model | None,
            Field(None, description=f"Settings of the {name} {section.group.kind}."),
        )
    return create_model(section.__name__, __doc__=section.__doc__, __config__=_CLOSED, **fields)


def grid_schema_model() -> type[BaseModel]:
    """GridConfig with the installed plugins' sections, for `gridpipe schema`."""
    payload = create_model(
        "PayloadSection",
        __doc__=PayloadSection.__doc__,
        __config__=_CLOSED,
        name=(_choice(available(Group.payloads)), Field(description="Payload name.")),
        mode=(PayloadSection.model_fields["mode"].annotation, PayloadSection.model_fields["mode"]),
    )
    fields: dict[str, Any] = {key: (f.annotation, f) for key, f in GridConfig.model_fields.items()}
    fields["backend"] = (_plugin_schema_model(BackendSection), ...)
    fields["storage"] = (_plugin_schema_model(StorageSection), ...)
    fields["payload"] = (payload, ...)
    return create_model("GridConfig", __doc__=GridConfig.__doc__, __config__=_CLOSED, **fields)


SCHEMAS: dict[str, Any] = {
    "grid.schema.json": grid_schema_model,
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
        schema_of = model if isinstance(model, type) else model()
        atomic_write_text(path, json.dumps(schema_of.model_json_schema(), indent=2) + "\n")
        written.append(path)
    return written
