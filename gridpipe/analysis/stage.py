"""A stage: one step of the workflow as configs/workflow.yaml declares it (or Python builds it)."""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from gridpipe.analysis.config import RelPath, Strict, installed_in
from gridpipe.analysis.naming import value_name_problem
from gridpipe.core.plugins import Group

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)]
UnitName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40)]
PLACEHOLDERS = frozenset(
    {"analysis", "particle", "unit", "mode", "python", "analysis_path", "configs", "merged", "token"}
)
"""Placeholders every command may use; grid stages add output/inputs/input/input_stem, local ones outdir
(and `{inputs}`, which stands for no argument there)."""


def _command_problem(line: str) -> str:
    if not line.strip():
        raise ValueError("a command line is empty; write the program and its arguments")
    return line


CommandLine = Annotated[str, AfterValidator(_command_problem)]
CommandLines = Annotated[list[CommandLine], Field(min_length=1)]


def _name_template(template: str) -> str:
    """A template of a job or file name: its fixed text may not hold path separators or spaces, and its
    placeholders are plain names; the filled-in name is checked again when jobs are planned."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad placeholder ({exc}); write {{name}}") from None
    for literal, field, spec, conversion in parts:
        if (
            any(c in literal for c in "/\\")
            or ".." in literal
            or any(not c.isprintable() or c.isspace() for c in literal)
        ):
            raise ValueError("must be one name: no '/', '\\', '..', spaces or control characters")
        if field is not None and (not field.isidentifier() or conversion or (spec and "{" in spec)):
            raise ValueError(f"placeholder {{{field}}} must be a plain {{name}}")
    return template


NameTemplate = Annotated[str, AfterValidator(_name_template)]


class Sweep(Strict):
    """A parameter splitter (Ganga's GenericSplitter): one unit per value."""

    name: Identifier = Field(description="Placeholder name ({name} in the command) or environment variable.")
    values: list[str | int | float] = Field(min_length=1, description="Values, one unit each.")
    env: bool = Field(
        False, description="Pass the value as environment variable `name` instead of a placeholder."
    )

    @field_validator("values", mode="before")
    @classmethod
    def _no_booleans(cls, values: object) -> object:
        if isinstance(values, list) and any(isinstance(v, bool) for v in values):
            raise ValueError("a sweep value is true/false (YAML reads yes/no/on/off so); quote it")
        return values

    @field_validator("values")
    @classmethod
    def _values_name_units(cls, values: list[str | int | float]) -> list[str | int | float]:
        seen: set[str] = set()
        for value in values:
            problem = value_name_problem(str(value))
            if problem:
                raise ValueError(f"sweep value {str(value)[:40]!r} {problem}")
            if str(value) in seen:
                raise ValueError(f"sweep value {str(value)[:40]!r} appears twice (each makes one unit)")
            seen.add(str(value))
        return values


class Stage(Strict):
    """One step: its units, inputs, payload command lines, outputs and splitting."""

    name: Identifier
    kind: Literal["grid", "local"] = Field(
        "grid", description="grid: input lists split into jobs on the backend; local: one job per unit here."
    )
    output_type: str | None = Field(None, description="TRAINING, DL2, MODEL, PERFORMANCE (for `submit`).")
    estimate_energy: bool = Field(False, description="TRAINING stages: the energy model is applied.")
    needs: list[Identifier] = Field(default_factory=list, description="Stages that must be complete first.")
    units: list[UnitName] = Field(default_factory=lambda: ["all"], description="Particles (one unit each).")
    sweep: Sweep | None = Field(None, description="Parameter sweep: units x values.")
    input_list: str | None = Field(
        None, description="grid: key of the input list in grid.yaml, e.g. '{unit}_energy'."
    )
    data_type: RelPath | None = Field(
        None, description="grid: folder below data/ where outputs are gathered."
    )
    job_name: NameTemplate = Field(description="Job name template, e.g. '{analysis}_DL2_{unit}_{token}'.")
    output: NameTemplate | None = Field(None, description="grid: output file name template of one job.")
    merged: NameTemplate | None = Field(None, description="grid: merged file name template of one unit.")
    models: list[Identifier] = Field(
        default_factory=list, description="Local stages whose uploaded files jobs get."
    )
    sandbox: list[RelPath] = Field(default_factory=list, description="Analysis files sent with every job.")
    outdir: RelPath | None = Field(None, description="local: output folder relative to the analysis.")
    upload: bool = Field(False, description="local: upload the outdir's files to the grid after success.")
    n_file_per_job: int | None = Field(None, ge=1, description="Overrides grid.yaml jobs.n_file_per_job.")
    splitter: Annotated[str, installed_in(Group.splitters)] = Field(
        "files", description="grid: how inputs become jobs (an installed `gridpipe.splitters` plugin)."
    )
    command: CommandLines | dict[str, CommandLines] = Field(
        description="Command lines run in order (no shell); or one list per payload name."
    )
    backend: Annotated[str, installed_in(Group.backends)] | None = Field(
        None,
        description="Backend this stage's jobs run on (an installed `gridpipe.backends` plugin; default: "
        "grid.yaml's backend for grid stages, local for local ones). A local stage may name a backend that "
        "shares this machine's files (slurm).",
    )

    @model_validator(mode="after")
    def _complete(self) -> Stage:
        if self.kind == "grid":
            missing = [k for k in ("input_list", "data_type", "output") if getattr(self, k) is None]
            if missing and not self.needs:
                raise ValueError(
                    f"a grid stage needs {', '.join(missing)} (or `needs` to take earlier outputs)"
                )
            if self.output is None:
                raise ValueError("a grid stage needs `output`, the file name template of one job's output")
        elif self.outdir is None:
            raise ValueError("a local stage needs `outdir`, the folder its outputs are written to")
        return self

    def placeholders(self) -> set[str]:
        """The placeholders this stage's commands may use (what the planner fills in)."""
        known = set(PLACEHOLDERS) | (
            {self.sweep.name} if self.sweep is not None and not self.sweep.env else set()
        )
        return known | (
            {"output", "inputs", "input", "input_stem"} if self.kind == "grid" else {"outdir", "inputs"}
        )

    def commands_for(self, payload: str) -> CommandLines:
        """The command lines of this stage for a payload."""
        if isinstance(self.command, list):
            return self.command
        if payload not in self.command:
            raise KeyError(payload)
        return self.command[payload]
