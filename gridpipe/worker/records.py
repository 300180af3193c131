"""The job file (written at submission, read by the worker) and the exit record (written by the worker).

Both are small versioned JSON documents beside each other: `NAME.job.json` and `NAME.exit.json`. A batch
backend writes the job file when it submits, and reads the exit record when its batch system no longer
knows the job. Both appear atomically (temp file + rename). A backend may instead write one batch file for
many jobs: one line per job, `NAME<tab>job file as one line of JSON`; the worker then reads the line keyed
by the name of a `NAME.job.json` that need not exist, and writes the job's files beside it as usual.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from gridpipe.core.exceptions import UsageError
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.core.models import JobSpec
from gridpipe.core.states import FINAL_STATES, JobStatus
from gridpipe.storage.contract import FileInfo

JOB_FILE_VERSION = 1
EXIT_RECORD_VERSION = 1
JOB_SUFFIX = ".job.json"
EXIT_SUFFIX = ".exit.json"
M = TypeVar("M", bound=BaseModel)


class RecordError(UsageError):
    """A job file or exit record that cannot be read: missing, not JSON, or not the expected document."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class JobFile(BaseModel):
    """What the worker needs to run one job on a node that shares the analysis's file system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = JOB_FILE_VERSION
    analysis: str
    """Absolute path of the analysis; its configs/grid.yaml names the storage the job's files live in."""
    spec: JobSpec
    work_dir: str | None = None
    """A folder (e.g. a node's scratch) to run the job in, in `gridpipe-NAME/`; None: `NAME.work/` beside
    the job file."""

    @field_validator("analysis", "work_dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("an absolute path is expected")
        return value

    @field_validator("spec")
    @classmethod
    def _runnable(cls, spec: JobSpec) -> JobSpec:
        if any(not argv or not argv[0] for argv in spec.commands):
            raise ValueError("every command line names a program")
        return spec


def _final(status: JobStatus) -> JobStatus:
    if status not in FINAL_STATES:
        raise ValueError(f"an exit record holds a final status ({', '.join(sorted(FINAL_STATES))})")
    return status


class OutputRecord(BaseModel):
    """One registered output: LFN, size in bytes, Adler-32 as 8 lowercase hex digits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lfn: str
    size: int = Field(ge=0)
    adler32: str = Field(pattern=r"^[0-9a-f]{8}$")

    @classmethod
    def of(cls, info: FileInfo) -> OutputRecord:
        """The record of a storage's catalogue entry."""
        return cls(lfn=info.lfn, size=info.size, adler32=info.adler32)


class ExitRecord(BaseModel):
    """How a job ended where it ran, written by the worker after its last step."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = EXIT_RECORD_VERSION
    job: str
    """The job's name (as in its job file)."""
    status: Annotated[JobStatus, AfterValidator(_final)]
    exit_code: int | None
    reason: str | None
    started: AwareDatetime
    ended: AwareDatetime
    host: str
    outputs: tuple[OutputRecord, ...] = ()


def base_name(job_file: Path) -> str:
    """`NAME` of `NAME.job.json` (or of `NAME.json`, or the whole name)."""
    name = job_file.name
    for suffix in (JOB_SUFFIX, ".json"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def beside(job_file: Path, suffix: str) -> Path:
    """The file `NAME<suffix>` next to the job file `NAME.job.json`."""
    return job_file.with_name(base_name(job_file) + suffix)


def exit_record_path(job_file: Path) -> Path:
    """Where the worker writes the exit record of `job_file`."""
    return beside(job_file, EXIT_SUFFIX)


def write_job_file(path: Path, job: JobFile) -> None:
    """Write the job file atomically."""
    atomic_write_text(path, job.model_dump_json(indent=1) + "\n")


def batch_line(key: str, job: JobFile) -> str:
    """The line of a batch file holding `job` under `key` (a name without tab or line break)."""
    return f"{key}\t{job.model_dump_json()}\n"


def read_batch_job(path: Path, key: str) -> JobFile:
    """The job keyed `key` in the batch file at `path`; RecordError (one line) when it is not there."""
    prefix = key.encode() + b"\t"
    try:
        with path.open("rb") as fh:
            line = next((line for line in fh if line.startswith(prefix)), None)
    except OSError as exc:
        raise RecordError(path, f"cannot read the batch file: {exc.strerror or exc}") from None
    if line is None:
        raise RecordError(path, f"the batch file holds no job {key!r}")
    return _parse(path, line[len(prefix) :], JobFile, "job file", JOB_FILE_VERSION)


def write_exit_record(path: Path, record: ExitRecord) -> None:
    """Write the exit record atomically."""
    atomic_write_text(path, record.model_dump_json(indent=1) + "\n")


def read_job_file(path: Path) -> JobFile:
    """The job file at `path`; RecordError (one line) if it is missing or not a job file of this version."""
    return _read(path, JobFile, "job file", JOB_FILE_VERSION)


def read_exit_record(path: Path) -> ExitRecord | None:
    """The exit record at `path`, None when there is none (yet); RecordError if it is not one."""
    if not path.exists():
        return None
    return _read(path, ExitRecord, "exit record", EXIT_RECORD_VERSION)


def _read(path: Path, model: type[M], what: str, version: int) -> M:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise RecordError(path, f"cannot read the {what}: {exc.strerror or exc}") from None
    return _parse(path, text, model, what, version)


def _parse(path: Path, text: bytes, model: type[M], what: str, version: int) -> M:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RecordError(path, f"not a valid {what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RecordError(path, f"not a valid {what}: a JSON object is expected")
    if "version" not in data:
        raise RecordError(path, f"not a valid {what}: key 'version' is missing")
    if data["version"] != version:
        raise RecordError(
            path, f"{what} version {data['version']!r} is not supported (this gridpipe reads {version})"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise RecordError(path, f"not a valid {what}: key '{key}': {first['msg']}") from None
