"""`backend.htcondor` of configs/grid.yaml: which schedd jobs go to and what they ask for.

Every value that reaches the submit description is checked here, so that a bad one stops `check` (and
every command) with one line naming the key: no newline or NUL can start another submit command, and the
commands gridpipe writes itself cannot be given again in `extra_submit`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from gridpipe.backends.batch_settings import BatchSection

_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:\d{1,5})?$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B?)?$", re.IGNORECASE)
_COMMAND = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")

SET_BY_GRIDPIPE: dict[str, str] = {
    "executable": "gridpipe runs the job worker on the job's file",
    "arguments": "gridpipe runs the job worker on the job's file",
    "initialdir": "gridpipe runs every job in its job folder",
    "output": "gridpipe writes the job's output in its job folder (gridpipe logs JOB shows it)",
    "error": "gridpipe writes the job's errors in its job folder (gridpipe logs JOB shows them)",
    "queue": "gridpipe queues one job per gridpipe job, in one transaction",
    "batch_name": "gridpipe names the batch after the analysis",
    "jobbatchname": "gridpipe names the batch after the analysis",
    "universe": "set backend.htcondor.universe instead",
    "container_image": "set backend.htcondor.container_image instead",
    "requirements": "set backend.htcondor.requirements instead",
    "request_cpus": "set backend.htcondor.request_cpus instead",
    "request_memory": "set backend.htcondor.request_memory instead",
    "request_disk": "set backend.htcondor.request_disk instead",
    "accounting_group": "set backend.htcondor.accounting_group instead",
    "accountinggroup": "set backend.htcondor.accounting_group instead",
    "should_transfer_files": "set backend.htcondor.file_transfer instead",
    "when_to_transfer_output": "set backend.htcondor.file_transfer instead",
    "transfer_executable": "set backend.htcondor.file_transfer instead",
    "transfer_input_files": "set backend.htcondor.file_transfer instead",
    "transfer_output_files": "set backend.htcondor.file_transfer instead",
    "environment": "set backend.htcondor.environment instead (values are carried exactly in the job file)",
    "env": "set backend.htcondor.environment instead (values are carried exactly in the job file)",
    "getenv": "set backend.htcondor.environment instead (values are carried exactly in the job file)",
    "hold": "gridpipe's jobs start as soon as the pool runs them",
    "leave_in_queue": "gridpipe follows jobs that left the queue through the schedd's history",
}


def refused_command(command: str) -> str | None:
    """Why `command` (a submit command name) may not be given in `extra_submit`; None when it may."""
    if not _COMMAND.match(command):
        return "a submit command is a name of letters, digits, '_' and '.' (custom attributes start with '+')"
    lowered = command.lower()
    if lowered.startswith(("+gridpipe", "my.gridpipe")):
        return "gridpipe marks every job with its analysis, job and attempt (+Gridpipe...)"
    return SET_BY_GRIDPIPE.get(lowered.removeprefix("+").removeprefix("my."))


def check_classad(expression: str) -> str:
    """`expression` when HTCondor's ClassAd parser reads it (or the bindings are not installed: the backend
    itself then says how to install them); else ValueError, before any job is submitted with it."""
    if not expression:
        return expression
    try:
        import classad2
    except ImportError:
        return expression
    try:
        classad2.ExprTree(expression)
    except Exception:  # classad2.ClassAdException, and whatever a future binding raises for a parse error
        raise ValueError(
            "is not a ClassAd expression HTCondor can read (e.g. 'Memory >= 2048 && OpSys == \"LINUX\"')"
        ) from None
    return expression


def _one_line(value: str) -> str:
    if any(ch in value for ch in "\n\r\0"):
        raise ValueError("a value may not hold a newline or NUL")
    return value


class HTCondorSection(BatchSection):
    """`backend.htcondor` of configs/grid.yaml."""

    schedd: str = Field("", description="Name of the schedd to submit to ('' = the local schedd).")
    collector: str = Field(
        "",
        description="Collector (host[:port]) that locates a named schedd ('' = HTCondor's configured one).",
    )
    requirements: str = Field("", description="ClassAd expression the execute slots must meet ('' = none).")
    request_cpus: int = Field(1, ge=1, le=1024, description="CPUs per job.")
    request_memory: str = Field(
        "", description="Memory per job, e.g. 2GB or 2048 (MB) ('' = the pool's default)."
    )
    request_disk: str = Field("", description="Scratch disk per job, e.g. 1GB ('' = the pool's default).")
    accounting_group: str = Field("", description="Accounting group jobs are charged to ('' = none).")
    universe: Literal["vanilla", "container", "docker"] = Field("vanilla", description="Job universe.")
    container_image: str = Field("", description="Image of the container/docker universe.")
    extra_submit: dict[str, str] = Field(
        default_factory=dict,
        description="More submit commands (name: value), e.g. {'+ProjectName': '\"cta\"'}; those gridpipe sets are refused.",
    )
    file_transfer: bool = Field(
        False,
        description="Transfer the job file and the worker's records instead of relying on a shared file system.",
    )
    hold_timeout: float = Field(
        600.0, ge=0, description="Seconds a held job may stay held before gridpipe removes it as failed."
    )
    lost_after: float = Field(
        900.0,
        ge=0,
        description="Seconds a job may be missing from both queue and history before it counts as lost.",
    )

    @field_validator("schedd", "accounting_group")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value and not _NAME.match(value):
            raise ValueError("letters, digits and '_', '.', '@', '+', '-' only")
        return value

    @field_validator("collector")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and not _HOST.match(value):
            raise ValueError("a host name or address, optionally with :port")
        return value

    @field_validator("request_memory", "request_disk")
    @classmethod
    def _size(cls, value: str) -> str:
        if value and not _SIZE.match(value):
            raise ValueError("a number, optionally followed by a unit (KB, MB, GB, TB), e.g. 2GB")
        return value

    @field_validator("container_image")
    @classmethod
    def _line(cls, value: str) -> str:
        return _one_line(value)

    @field_validator("requirements")
    @classmethod
    def _classad(cls, value: str) -> str:
        return check_classad(_one_line(value))

    @field_validator("extra_submit")
    @classmethod
    def _extra(cls, commands: dict[str, str]) -> dict[str, str]:
        for command, value in commands.items():
            why = refused_command(command)
            if why:
                raise ValueError(f"submit command {command!r} is refused: {why}")
            _one_line(value)
        return commands
