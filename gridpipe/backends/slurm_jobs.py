"""The Slurm backend's folders: one per attempt of a job, and a link from each Slurm job id to its folder.

    .gridpipe/slurm/jobs/<name>/<n>/job.job.json     the worker's job file (gridpipe.worker.records)
                                   /batch.sh         what sbatch runs: exec <python> -m gridpipe.worker job.job.json
                                   /slurm-<id>.out   Slurm's output and error files of the batch script
                                   /job.exit.json    the worker's exit record; job.stdout.log / job.stderr.log
    .gridpipe/slurm/ids/<id> -> ../jobs/<name>/<n>

The attempt folder `n` is new for every submission, so an earlier attempt's exit record is never taken for a
later one's. Slurm's comment of the job is `gridpipe:<analysis key>:<n>`: the analysis key (from the
analysis's absolute path) and the attempt find the folder again after a crash.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gridpipe.backends.batch_folders import (
    AttemptFolder as BaseAttemptFolder,
)
from gridpipe.backends.batch_folders import (
    new_attempt_dir,
    worker_script,
    write_job_file,
    write_new,
)
from gridpipe.backends.slurm_states import stepd_note
from gridpipe.core.models import JobSpec

BATCH_SCRIPT = "batch.sh"
"""Also the attempt's sbatch lock: locked by the process that runs its sbatch and inherited by sbatch
itself; while it is locked, an sbatch may still be on its way (its submitter killed), so the attempt is not
yet lost."""
MARKER_PREFIX = "gridpipe:"


def slurm_dir_of(analysis_path: Path) -> Path:
    """The Slurm backend's folder of an analysis."""
    return analysis_path / ".gridpipe" / "slurm"


def marker(key: str, attempt: int) -> str:
    """The comment of a job: analysis and attempt."""
    return f"{MARKER_PREFIX}{key}:{attempt}"


def attempt_of(comment: str, key: str) -> int | None:
    """The attempt number in a job's comment when it is one of this analysis's markers, else None."""
    prefix = f"{MARKER_PREFIX}{key}:"
    tail = comment.strip().removeprefix(prefix)
    if not comment.strip().startswith(prefix) or not tail.isdigit():
        return None
    return int(tail)


@dataclass(frozen=True)
class AttemptFolder(BaseAttemptFolder):
    """The folder of one attempt of one Slurm job: also its batch script and Slurm's output files."""

    @property
    def script(self) -> Path:
        return self.path / BATCH_SCRIPT

    @contextmanager
    def sbatch_lock(self) -> Iterator[int]:
        """Hold this attempt's sbatch lock (the descriptor is handed to sbatch, which keeps it while it runs)."""
        fd = os.open(self.script, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def wait_sbatch(self, timeout: float) -> bool:
        """Wait until no sbatch of this attempt can still be running (False: one still holds the lock)."""
        try:
            fd = os.open(self.script, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
        finally:
            os.close(fd)

    def stepd_note(self, slurm_id: str) -> str | None:
        """What slurmstepd wrote in the job's error file about why it ended (only its last 8 KiB are read)."""
        path = self.path / f"slurm-{slurm_id}.err"
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 8192))
                return stepd_note(fh.read().decode("utf-8", errors="replace"))
        except OSError:
            return None


@dataclass(frozen=True)
class JobFolders:
    """The folders of one analysis's Slurm jobs."""

    analysis_path: Path

    @property
    def root(self) -> Path:
        return slurm_dir_of(self.analysis_path)

    def job_dir(self, name: str) -> Path:
        return self.root / "jobs" / name

    def new_attempt(self, spec: JobSpec, python: str, env: dict[str, str]) -> AttemptFolder:
        """A fresh attempt folder holding the job file and the batch script."""
        path, n = new_attempt_dir(self.job_dir(spec.name))
        folder = AttemptFolder(path, spec.name, n)
        write_job_file(folder, self.analysis_path, spec, env)
        write_new(folder.script, batch_script(python, folder.job_file), 0o755)
        return folder

    def attempt(self, name: str, n: int) -> AttemptFolder:
        return AttemptFolder(self.job_dir(name) / str(n), name, n)

    def attempt_at(self, workdir: str, name: str) -> int | None:
        """The attempt whose folder `workdir` is (a job of `name` of this analysis), else None."""
        folder = Path(workdir)
        if not workdir or folder.parent != self.job_dir(name) or not folder.name.isdigit():
            return None
        return int(folder.name)

    def link_id(self, slurm_id: str, folder: AttemptFolder) -> None:
        """Record which folder the Slurm job `slurm_id` runs in (kept if already there)."""
        ids = self.root / "ids"
        target = os.path.relpath(folder.path, ids)
        try:
            os.symlink(target, ids / slurm_id)
        except FileNotFoundError:
            ids.mkdir(parents=True, exist_ok=True)
            self.link_id(slurm_id, folder)
        except FileExistsError:
            pass

    def by_id(self, slurm_id: str) -> AttemptFolder | None:
        """The attempt folder of a Slurm job id this analysis submitted, None for others."""
        if not slurm_id.isdigit():
            return None
        link = self.root / "ids" / slurm_id
        try:
            target = (link.parent / os.readlink(link)).resolve()
        except OSError:
            return None
        if not target.name.isdigit():
            return None
        return AttemptFolder(target, target.parent.name, int(target.name))

    def attempts(self, name: str) -> list[AttemptFolder]:
        """Every attempt folder of a job."""
        base = self.job_dir(name)
        if not base.is_dir():
            return []
        return sorted(
            (AttemptFolder(p, name, int(p.name)) for p in base.iterdir() if p.name.isdigit()),
            key=lambda f: f.attempt,
        )

    def started_ids(self, name: str) -> dict[str, AttemptFolder]:
        """Slurm ids of this job's attempts that started (Slurm created their output files)."""
        found: dict[str, AttemptFolder] = {}
        base = self.job_dir(name)
        if not base.is_dir():
            return found
        for out in base.glob("*/slurm-*.out"):
            slurm_id = out.name.removeprefix("slurm-").removesuffix(".out")
            if slurm_id.isdigit() and out.parent.name.isdigit():
                found[slurm_id] = AttemptFolder(out.parent, name, int(out.parent.name))
        return found


def batch_script(python: str, job_file: Path) -> str:
    """The batch script: exec the job worker on the job file (paths quoted; nothing else is run)."""
    return worker_script(python, job_file)
