"""`backend.slurm` of configs/grid.yaml: where and how jobs are submitted to a Slurm cluster.

Every value that reaches an `sbatch` argument is checked here, so that a bad one stops `check` (and every
command) with one line naming the key; nothing is ever given to a shell.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from gridpipe.backends.batch_settings import BatchSection

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$|^\d+-\d+$")
_MEMORY = re.compile(r"^\d+[KMGT]?$")

REFUSED_OPTIONS: dict[str, str] = {
    "--job-name": "gridpipe names every job (its deterministic name, used to find it after a crash)",
    "-J": "gridpipe names every job (its deterministic name, used to find it after a crash)",
    "--comment": "gridpipe marks every job with its analysis and attempt in the comment",
    "--output": "gridpipe writes the job's output in its job folder (gridpipe logs JOB shows it)",
    "-o": "gridpipe writes the job's output in its job folder (gridpipe logs JOB shows it)",
    "--error": "gridpipe writes the job's errors in its job folder (gridpipe logs JOB shows them)",
    "-e": "gridpipe writes the job's errors in its job folder (gridpipe logs JOB shows them)",
    "--chdir": "gridpipe runs every job in its job folder",
    "-D": "gridpipe runs every job in its job folder",
    "--parsable": "gridpipe reads sbatch's answer itself",
    "--wrap": "gridpipe writes the batch script (it runs the job worker)",
    "--array": "one sbatch per job keeps submission exactly once",
    "-a": "one sbatch per job keeps submission exactly once",
    "--requeue": "set backend.slurm.requeue instead",
    "--no-requeue": "set backend.slurm.requeue instead",
    "--partition": "set backend.slurm.partition instead",
    "-p": "set backend.slurm.partition instead",
    "--account": "set backend.slurm.account instead",
    "-A": "set backend.slurm.account instead",
    "--qos": "set backend.slurm.qos instead",
    "-q": "set backend.slurm.qos instead",
    "--time": "set backend.slurm.time_limit instead",
    "-t": "set backend.slurm.time_limit instead",
    "--mem": "set backend.slurm.memory instead",
    "--cpus-per-task": "set backend.slurm.cpus_per_task instead",
    "-c": "set backend.slurm.cpus_per_task instead",
    "--export": "set backend.slurm.environment instead (values are carried exactly in the job file)",
    "--wait": "gridpipe waits for jobs itself (gridpipe run)",
    "-W": "gridpipe waits for jobs itself (gridpipe run)",
    "--test-only": "gridpipe submit --dry-run shows the sbatch command without submitting",
}


def refused_option(option: str) -> str | None:
    """Why `option` (one sbatch argument) may not be given in `extra_options`; None when it may."""
    if not option.startswith("-"):
        return "every extra option starts with '-' and holds its value after '=' (e.g. --constraint=gpu)"
    if any(ch in option for ch in "\n\r\0"):
        return "an option may not hold a newline or NUL"
    key = option.split("=", 1)[0]
    if key in REFUSED_OPTIONS:
        return REFUSED_OPTIONS[key]
    short = next((s for s in REFUSED_OPTIONS if len(s) == 2 and key.startswith(s) and len(key) > 2), None)
    if short is not None and not key.startswith("--"):
        return REFUSED_OPTIONS[short]
    return None


class SlurmSection(BatchSection):
    """`backend.slurm` of configs/grid.yaml."""

    partition: str = Field("", description="Partition(s) to submit to ('' = the cluster's default).")
    account: str = Field("", description="Account jobs are charged to ('' = your default).")
    qos: str = Field("", description="Quality of service ('' = the default).")
    time_limit: str = Field(
        "", description="Time limit of every job in Slurm's form (MM, HH:MM:SS, D-HH:MM; '' = partition's)."
    )
    memory: str = Field("", description="Memory per node (--mem), e.g. 4G ('' = the cluster's default).")
    cpus_per_task: int = Field(1, ge=1, le=1024, description="CPUs per job (--cpus-per-task).")
    extra_options: list[str] = Field(
        default_factory=list,
        description="More sbatch options, one argument each (e.g. --constraint=gpu); those gridpipe sets are refused.",
    )
    requeue: bool = Field(False, description="Let Slurm requeue jobs (default: --no-requeue).")
    submit_rate: float = Field(
        0.0, ge=0, description="Most sbatch calls per second (0 = no limit; clusters may ask for one)."
    )
    submit_parallel: int = Field(
        4, ge=1, le=32, description="sbatch calls in flight at once (1: one after the other)."
    )
    command_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds each Slurm client call may take (longer than slurmctld's MessageTimeout).",
    )
    accounting: bool | None = Field(
        None, description="Ask sacct for jobs squeue forgot (null = when the cluster has accounting)."
    )

    @field_validator("partition", "account", "qos")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value and not _NAME.match(value):
            raise ValueError("letters, digits, '_', '.', '+', '-' (and ',' between names) only")
        return value

    @field_validator("time_limit")
    @classmethod
    def _time(cls, value: str) -> str:
        if value and not _TIME.match(value):
            raise ValueError(
                "Slurm's time form is expected: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
            )
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if value and not _MEMORY.match(value):
            raise ValueError("a number of megabytes, or a number followed by K, M, G or T (e.g. 4G)")
        return value

    @field_validator("extra_options")
    @classmethod
    def _extra(cls, options: list[str]) -> list[str]:
        for option in options:
            why = refused_option(option)
            if why:
                raise ValueError(f"option {option!r} is refused: {why}")
        return options
