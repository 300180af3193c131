"""What the settings sections of the batch backends (`backend.slurm`, `backend.htcondor`) share: the
environment every job gets, and the retries of a call while the batch system cannot be reached."""

from __future__ import annotations

from pydantic import Field, field_validator

from gridpipe.analysis.config import Strict
from gridpipe.analysis.naming import is_env_name


class BatchSection(Strict):
    """The keys every batch backend's section has (each backend adds its own)."""

    environment: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set for every job (carried exactly)."
    )
    retries: int = Field(
        3, ge=0, le=20, description="Retries of a call while the batch system cannot be reached."
    )
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry (doubled each time).")
    backoff_max: float = Field(30.0, ge=0, description="Longest wait between two retries, in seconds.")

    @field_validator("environment")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not is_env_name(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if "\0" in value:
                raise ValueError(f"the value of {name} holds a NUL character")
        return env
