"""Domain records shared by the store, the backends and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gridpipe.core.states import JobStatus

Where = Literal["grid", "local"]


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one job; deterministic from the analysis, stage and inputs.

    `commands` are argvs (never shell strings) run in order in the job's working directory. Grid jobs get their
    `inputs` (LFNs) staged into that directory and their `outputs` (LFNs) registered in storage by basename
    after success; local jobs (models, performance) read and write absolute local paths.
    """

    name: str
    stage: str
    unit: str
    commands: tuple[tuple[str, ...], ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    sandbox: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    where: Where = "grid"
    backend: str | None = None
    """The backend the job's stage names (workflow.yaml `backend:`); None: the analysis's backend for grid
    jobs, the local backend for local ones."""
    payload: str | None = None
    """The payload whose commands these are (it words their failures and checks their outputs)."""

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (stored in the job archive and handed to backends)."""
        return {
            "name": self.name,
            "stage": self.stage,
            "unit": self.unit,
            "commands": [list(c) for c in self.commands],
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "sandbox": list(self.sandbox),
            "env": dict(self.env),
            "where": self.where,
            **({"backend": self.backend} if self.backend else {}),
            **({"payload": self.payload} if self.payload else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        """Inverse of `to_json`."""
        return cls(
            name=data["name"],
            stage=data["stage"],
            unit=data["unit"],
            commands=tuple(tuple(c) for c in data["commands"]),
            inputs=tuple(data.get("inputs", ())),
            outputs=tuple(data.get("outputs", ())),
            sandbox=tuple(data.get("sandbox", ())),
            env=dict(data.get("env", {})),
            where=data.get("where", "grid"),
            backend=data.get("backend"),
            payload=data.get("payload"),
        )


@dataclass(frozen=True)
class BackendStatus:
    """What a backend reports about one of its jobs."""

    backend_id: str
    status: JobStatus
    site: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    flagged: bool = False
    started: str | None = None
    """When the attempt began to run (ISO 8601, UTC), if the backend or the job's worker recorded it."""


@dataclass(frozen=True)
class BackendJob:
    """A job the backend knows, found by name (for reconciliation after a crash)."""

    backend_id: str
    name: str
    status: JobStatus
