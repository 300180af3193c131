"""What the batch backends (Slurm, HTCondor) share on the file system: one folder per attempt of a job,
holding the worker's job file, the job's output files and the worker's exit record.

    <backend folder>/jobs/<name>/<n>/job.job.json   the worker's job file (gridpipe.worker.records)
                                    /job.exit.json  the worker's exit record; job.stdout.log / job.stderr.log

or, where the batch system finds a job's attempts itself (HTCondor, by attribute), every attempt's files in
one folder, named by job and attempt: `jobs/<name>.<n>.exit.json`, ..., and the jobs themselves in one batch
file per submission (`gridpipe.worker.records`): on a file system where metadata is slow, making files and
folders dominated the cost of a submission.

The attempt `n` is new for every submission, so an earlier attempt's exit record is never taken for a
later one's. Each backend adds its own files (a batch script, the batch system's output files) and its own
way of finding a folder from a batch job id.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from gridpipe.core.models import BackendStatus, JobSpec
from gridpipe.core.timeutil import isoformat
from gridpipe.worker.records import ExitRecord, JobFile, RecordError, exit_record_path, read_exit_record

_SHOWN = (".out", ".err", ".log", ".exit.json")


def analysis_key(analysis_path: Path) -> str:
    """A short key naming the analysis in its batch jobs (from its absolute path)."""
    return hashlib.sha256(str(analysis_path.absolute()).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AttemptFolder:
    """The files of one attempt of one job: a folder of its own (`stem` "job": job.job.json, ...), or
    `<stem>.job.json`, `<stem>.exit.json`, ... in a folder shared with other attempts."""

    path: Path
    name: str
    attempt: int
    stem: str = "job"

    @property
    def job_file(self) -> Path:
        return self.path / f"{self.stem}.job.json"

    @property
    def shared(self) -> bool:
        return self.stem != "job"

    def exit_record(self) -> ExitRecord | None:
        """The worker's exit record, None when there is none (or it cannot be read)."""
        try:
            return read_exit_record(exit_record_path(self.job_file))
        except RecordError:
            return None

    def files(self) -> list[Path]:
        """The attempt's text files worth showing in `gridpipe logs`."""
        prefix = f"{self.stem}." if self.shared else ""
        with os.scandir(self.path) as entries:
            shown = [
                Path(e.path)
                for e in entries
                if e.name.startswith(prefix) and e.name.endswith(_SHOWN) and e.is_file()
            ]
        return sorted(shown)


def new_attempt_dir(job_dir: Path) -> tuple[Path, int]:
    """A new attempt folder under a job's folder, numbered after the last one (made here: this process's)."""
    try:
        job_dir.mkdir(parents=True)
        n = 1  # a new job: no earlier attempt to count
    except FileExistsError:
        n = max((int(p.name) for p in job_dir.iterdir() if p.name.isdigit()), default=0) + 1
    while True:
        try:
            (job_dir / str(n)).mkdir()
            return job_dir / str(n), n
        except FileExistsError:
            n += 1


def job_document(analysis_path: Path, spec: JobSpec, env: dict[str, str]) -> JobFile:
    """What the worker is given for a job: the job with the backend's environment under its own."""
    job_spec = JobSpec(**{**spec.__dict__, "env": {**env, **spec.env}}) if env else spec
    return JobFile(analysis=str(analysis_path.absolute()), spec=job_spec)


def write_job_file(folder: AttemptFolder, analysis_path: Path, spec: JobSpec, env: dict[str, str]) -> None:
    """The worker's job file of an attempt, with the backend's environment under the job's own.

    The file is new and this process's alone, and nothing is submitted before it is whole: it is written
    in place, without a temporary file or an fsync."""
    job = job_document(analysis_path, spec, env)
    write_new(folder.job_file, job.model_dump_json(indent=1) + "\n", 0o644)


def write_new(path: Path, text: str, mode: int) -> None:
    """Create `path` (it must not exist) with `text` and exactly `mode`, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, mode)
        fh.write(text)


def worker_script(python: str, job_file: Path | None) -> str:
    """A job's shell script: exec the job worker on the job file, or on the script's arguments when
    `job_file` is None (paths quoted; nothing else is run)."""
    target = shlex.quote(str(job_file)) if job_file is not None else '"$@"'
    command = shlex.join([python, "-m", "gridpipe.worker"]) + " " + target
    return "#!/bin/sh\n# written by gridpipe: run one job with the job worker\nexec " + command + "\n"


def from_record(backend_id: str, record: ExitRecord) -> BackendStatus:
    """The status the job worker recorded: the answer for a job its batch system no longer knows, and the
    details (host, exit code, reason, start) of one it reports ended."""
    return BackendStatus(
        backend_id,
        record.status,
        record.host,
        record.exit_code,
        record.reason,
        started=isoformat(record.started),
    )
