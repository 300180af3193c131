"""The `slurm` backend: one `sbatch --parsable` per job, one `squeue` per refresh, one `scancel` for many.

Each job runs the shared job worker (`python -m gridpipe.worker`) on a node that shares the analysis's file
system; its folder holds the job file, Slurm's output and error files and the worker's exit record, which
answers for a job Slurm has forgotten (no accounting, MinJobAge passed). Jobs are named by their
deterministic name and marked (`--comment`) with the analysis and attempt, so that after a crash they are
found again by name and marker among the user's jobs (`lookup`) and never submitted twice.
"""

from __future__ import annotations

import os
import pwd
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from gridpipe.analysis.config import Strict
from gridpipe.analysis.naming import job_name_problem
from gridpipe.backends.batch_backend import BatchBackend
from gridpipe.backends.batch_folders import from_record
from gridpipe.backends.slurm_client import (
    Answer,
    SlurmClient,
    SlurmCommandError,
    SlurmTimeoutError,
    SlurmUnreachableError,
    unreachable,
)
from gridpipe.backends.slurm_jobs import AttemptFolder, JobFolders, attempt_of, marker
from gridpipe.backends.slurm_settings import SlurmSection
from gridpipe.backends.slurm_states import (
    FAILED,
    KILLED,
    QUEUED,
    RUNNING,
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    SlurmRow,
    parse_rows,
    status_of,
)
from gridpipe.core.exceptions import BackendError
from gridpipe.core.models import BackendJob, BackendStatus, JobSpec
from gridpipe.core.states import JobStatus

if TYPE_CHECKING:
    pass

ID_CHUNK = 5000
"""Job ids per squeue/scancel call (an argument stays far below the kernel's 128 KiB limit)."""
LOG_LIMIT = 1 << 20
_UNKNOWN_IDS = ("invalid job id",)
_NO_ACCOUNTING = "accounting storage is disabled"
_DONE_ALREADY = ("invalid job id", "already completing or completed", "job/step already")
LOOKUP_TRIES = 3


class SlurmBackend(BatchBackend):
    """Jobs on a Slurm cluster that shares the analysis's file system."""

    name: ClassVar[str] = "slurm"
    system: ClassVar[str] = "Slurm"
    settings_model: ClassVar[type[Strict]] = SlurmSection

    def __init__(self, analysis_path: Path, settings: SlurmSection) -> None:
        super().__init__(analysis_path, settings)
        self.settings = settings
        self.folders = JobFolders(self.analysis_path)
        self.client = SlurmClient(
            settings.command_timeout, settings.retries, settings.backoff, settings.backoff_max
        )
        self.accounting = settings.accounting
        self._last_submit = 0.0
        self._pace_lock = threading.Lock()

    @property
    def user(self) -> str:
        return pwd.getpwuid(os.getuid()).pw_name

    # ---- submission -------------------------------------------------------------------------------
    def sbatch_argv(self, spec: JobSpec, folder: AttemptFolder) -> list[str]:
        """The sbatch command of one attempt (an argv: no shell)."""
        s = self.settings
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={spec.name}",
            f"--comment={marker(self.key, folder.attempt)}",
            "--requeue" if s.requeue else "--no-requeue",
            f"--output={folder.path}/slurm-%j.out",
            f"--error={folder.path}/slurm-%j.err",
            f"--chdir={folder.path}",
            f"--cpus-per-task={s.cpus_per_task}",
        ]
        argv += [f"--{key}={value}" for key, value in self._resources() if value]
        return [*argv, *s.extra_options, str(folder.script)]

    def _resources(self) -> list[tuple[str, str]]:
        s = self.settings
        return [
            ("partition", s.partition),
            ("account", s.account),
            ("qos", s.qos),
            ("time", s.time_limit),
            ("mem", s.memory),
        ]

    def describe(self, spec: JobSpec) -> str | None:
        """The sbatch command the job would be submitted with (dry runs; no folder is made)."""
        folder = AttemptFolder(self.folders.job_dir(spec.name) / "N", spec.name, 0)
        return shlex.join(self.sbatch_argv(spec, folder))

    def submit(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """One sbatch per job; any failure raises BackendError (the engine looks the jobs up by name)."""
        self.check_names(specs)
        accepted: dict[str, str] = {}
        failures: list[BackendError] = []
        stop = threading.Event()
        python = self.job_python()

        def one(spec: JobSpec) -> None:
            if stop.is_set():
                return
            try:
                folder = self.folders.new_attempt(spec, python, self.settings.environment)
                accepted[spec.name] = self._sbatch(spec, folder)
            except BackendError as exc:
                stop.set()
                failures.append(exc)

        workers = min(self.settings.submit_parallel, len(specs))
        if workers <= 1:
            for spec in specs:
                one(spec)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="gridpipe-sbatch") as pool:
                list(pool.map(one, specs))
        if failures:
            exc = failures[0]
            note = (
                f" ({len(accepted)} of {len(specs)} job(s) accepted; the others are looked up by name "
                "before anything is submitted again)"
            )
            if isinstance(exc, SlurmUnreachableError):
                raise SlurmUnreachableError(exc.command, exc.problem + note) from exc
            raise BackendError(exc.detail + note) from exc
        return accepted

    def _sbatch(self, spec: JobSpec, folder: AttemptFolder) -> str:
        """Submit one attempt; its Slurm id. A call that timed out is reconciled, never repeated blindly."""
        argv = self.sbatch_argv(spec, folder)
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            self._pace()
            try:
                with folder.sbatch_lock() as lock:
                    answer = self.client.run_once(argv, pass_fds=(lock,))
            except SlurmTimeoutError as exc:
                found = self._find_attempt(spec.name, folder)
                if found is None:
                    raise BackendError(
                        f"sbatch of {spec.name}: {exc.problem}; Slurm shows no such job yet"
                    ) from None
                return found
            if answer.returncode == 0:
                slurm_id = answer.stdout.strip().split(";")[0]
                if not slurm_id.isdigit():
                    raise BackendError(
                        f"sbatch of {spec.name} answered {answer.stdout.strip()!r}, not a job id"
                    )
                self.folders.link_id(slurm_id, folder)
                return slurm_id
            if not _not_sent(answer):
                found = self._find_attempt(spec.name, folder) if unreachable(answer.stderr) else None
                if found is not None:
                    return found
                raise SlurmCommandError(f"sbatch of {spec.name}", answer.problem)
            if attempt < self.settings.retries:
                time.sleep(delay)
                delay = min(max(delay * 2, 0.1), self.settings.backoff_max)
        raise SlurmUnreachableError(f"sbatch of {spec.name}", answer.problem)

    def _pace(self) -> None:
        """Keep to `submit_rate` sbatch calls a second (over all threads)."""
        rate = self.settings.submit_rate
        if rate <= 0:
            return
        with self._pace_lock:
            start = max(time.monotonic(), self._last_submit + 1.0 / rate)
            self._last_submit = start
        wait = start - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _find_attempt(self, name: str, folder: AttemptFolder) -> str | None:
        """The Slurm id of this very attempt when Slurm has it (after an sbatch that did not answer)."""
        for n in range(LOOKUP_TRIES):
            try:
                for job in self.lookup([name]).get(name, []):
                    found = self.folders.by_id(job.backend_id)
                    if found is not None and found.path == folder.path:
                        return job.backend_id
            except BackendError:
                pass
            time.sleep(min(2.0**n, self.settings.command_timeout))
        return None

    # ---- status -------------------------------------------------------------------------------------
    def _squeue(self, extra: Sequence[str]) -> list[SlurmRow]:
        argv = ["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT, *extra]
        return parse_rows(self.client.run(argv, ok_problems=_UNKNOWN_IDS).stdout)

    def poll(self, backend_ids: Sequence[str]) -> list[BackendStatus]:
        """One squeue for all the jobs (per 5,000); jobs it forgot: sacct when there is accounting, then
        the worker's exit record. Ids that are not this analysis's Slurm jobs are reported failed. When
        slurmdbd cannot answer, the forgotten jobs with an exit record get it and the others keep their state."""
        ids = sorted({i for i in backend_ids if i.isascii() and i.isdigit()}, key=int)
        rows: dict[str, SlurmRow] = {}
        for chunk in _chunks(ids, ID_CHUNK):
            rows.update((r.slurm_id, r) for r in self._squeue(["-j", ",".join(chunk)]))
        missing = [i for i in ids if i not in rows]
        unanswered: set[str] = set()
        if missing:
            try:
                rows.update((r.slurm_id, r) for r in self._sacct(missing))
            except SlurmUnreachableError:
                unanswered = set(missing)  # a job missing from an accounting that did not answer is not over
        out: list[BackendStatus] = []
        for slurm_id in [*ids, *(i for i in backend_ids if i not in ids)]:
            if slurm_id in unanswered:
                status = self._recorded(slurm_id)
            else:
                status = self._status(slurm_id, rows.get(slurm_id))
            if status is not None:
                out.append(status)
        return out

    def _recorded(self, slurm_id: str) -> BackendStatus | None:
        """The status the worker's exit record gives a job, None without a record."""
        folder = self.folders.by_id(slurm_id)
        record = folder.exit_record() if folder is not None else None
        return from_record(slurm_id, record) if record is not None else None

    def _status(self, slurm_id: str, row: SlurmRow | None) -> BackendStatus | None:
        """A job's status from its row (None: Slurm forgot it) and, once it ended, its exit record."""
        if row is not None:
            attempt = attempt_of(row.comment, self.key) if not job_name_problem(row.name) else None
            if attempt is not None and (row.state in QUEUED or row.state in RUNNING):
                return status_of(row, None)  # no file is read for the many jobs still active
            folder = self.folders.attempt(row.name, attempt) if attempt is not None else None
            if folder is None or not folder.path.is_dir():  # accounting may keep names in lower case
                folder = self.folders.by_id(slurm_id)
            if attempt is not None or folder is not None:
                record = folder.exit_record() if folder is not None else None
                ended_badly = row.state in FAILED or row.state in KILLED
                note = folder.stepd_note(slurm_id) if folder is not None and ended_badly else None
                return status_of(row, record, note)
        recorded = self._recorded(slurm_id)
        if recorded is not None:
            return recorded
        if self.folders.by_id(slurm_id) is None:
            return BackendStatus(slurm_id, JobStatus.FAILED, reason="not a Slurm job of this analysis")
        return BackendStatus(
            slurm_id,
            JobStatus.FAILED,
            reason="Slurm no longer knows the job and the job worker left no exit record (see gridpipe logs)",
        )

    def _sacct(self, ids: Sequence[str]) -> list[SlurmRow]:
        """Jobs squeue forgot, from Slurm's accounting (when the cluster has it): one call per 5,000."""
        rows: list[SlurmRow] = []
        for chunk in _chunks(list(ids), ID_CHUNK):
            rows += self._sacct_rows(["-j", ",".join(chunk)])
        return rows

    def _sacct_rows(self, select: Sequence[str]) -> list[SlurmRow]:
        """Rows of one sacct call ([] without accounting, which the first call finds out once)."""
        if self.accounting is False:
            return []
        argv = ["sacct", "-n", "-P", "-X", "--starttime=now-30days", *select, "-o", SACCT_FIELDS]
        answer = self.client.run(argv, ok_problems=(_NO_ACCOUNTING, *_UNKNOWN_IDS))
        if _NO_ACCOUNTING in (answer.stderr + answer.stdout).lower():
            self.accounting = False
            return []
        self.accounting = True
        return parse_rows(answer.stdout, workdir=True)

    # ---- cancel, lookup, logs ------------------------------------------------------------------------
    def cancel(self, backend_ids: Sequence[str]) -> None:
        """One scancel for many ids (per 5,000); jobs that already ended are left as they are."""
        ids = sorted({i for i in backend_ids if i.isascii() and i.isdigit()}, key=int)
        for chunk in _chunks(ids, ID_CHUNK):
            self.client.run(["scancel", *chunk], ok_problems=_DONE_ALREADY)

    def lookup(self, names: Sequence[str]) -> dict[str, list[BackendJob]]:
        """This user's jobs with these names and this analysis's marker (squeue; sacct when there is
        accounting), and attempts that started whose job Slurm forgot (their output files hold the id)."""
        wanted = set(names)
        found: dict[str, dict[str, BackendJob]] = {}
        for name in sorted(wanted):  # an sbatch whose submitter was killed may still be on its way
            for folder in self.folders.attempts(name):
                if not folder.wait_sbatch(self.settings.command_timeout):
                    raise BackendError(
                        f"an sbatch of {name} (attempt {folder.attempt}) has not ended within "
                        f"{self.settings.command_timeout:g} s; try again once it has"
                    )
        rows = self._squeue(["-u", self.user]) + self._sacct_rows(["-u", self.user])
        for row in rows:
            name = _matching(row.name, wanted)
            if name is None:
                continue
            attempt = attempt_of(row.comment, self.key)
            if attempt is None:  # accounting without job comments: the job's folder says whose it is
                attempt = self.folders.attempt_at(row.workdir, name)
            if attempt is None:
                continue
            self.folders.link_id(row.slurm_id, self.folders.attempt(name, attempt))
            status = status_of(row, None)
            job = BackendJob(row.slurm_id, name, status.status if status else JobStatus.QUEUED)
            found.setdefault(name, {})[row.slurm_id] = job
        for name in wanted:
            for slurm_id, folder in self.folders.started_ids(name).items():
                if slurm_id not in found.get(name, {}):
                    self.folders.link_id(slurm_id, folder)
                    record = folder.exit_record()
                    state = record.status if record is not None else JobStatus.FAILED
                    found.setdefault(name, {})[slurm_id] = BackendJob(slurm_id, name, state)
        return {name: list(jobs.values()) for name, jobs in found.items()}

    def logs(self, backend_id: str) -> dict[str, str]:
        """Slurm's output and error files of the job, the worker's logs and its exit record."""
        folder = self.folders.by_id(backend_id)
        if folder is None:
            raise BackendError(
                f"{backend_id!r} is not a Slurm job of this analysis (no job folder links to it)"
            )
        texts = {}
        for path in folder.files():
            if path.name.startswith("slurm-") and not path.name.startswith(f"slurm-{backend_id}."):
                continue
            texts[path.name] = _tail(path)
        return texts


def _not_sent(answer: Answer) -> bool:
    """Whether a failed sbatch certainly did not reach the controller (safe to try again)."""
    text = answer.stderr.lower()
    return "unable to contact slurm controller" in text or "connection refused" in text


def _matching(slurm_name: str, wanted: set[str]) -> str | None:
    """The wanted name a Slurm job name stands for (accounting may keep names in lower case)."""
    if slurm_name in wanted:
        return slurm_name
    lowered = {w.lower(): w for w in wanted}
    return lowered.get(slurm_name.lower())


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size > LOG_LIMIT:
                fh.seek(size - LOG_LIMIT)
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror or exc})"


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
