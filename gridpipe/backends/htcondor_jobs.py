"""The HTCondor backend's folders and its submit description.

    .gridpipe/htcondor/job.sh                      every job's executable: exec <python> -m gridpipe.worker "$@"
    .gridpipe/htcondor/batches/<n>.jobs            submission n: one line per job, `<name>.<n><tab><job file>`
                             /<n>.<k>.jobs          with file transfer, its chunks of CHUNK jobs (k from 0)
    .gridpipe/htcondor/jobs/<name>.<n>.condor.out|err  HTCondor's output and error files of job.sh
                           /<name>.<n>.exit.json    the worker's exit record; <name>.<n>.stdout.log / .stderr.log
    .gridpipe/htcondor/clusters/<cluster>            `<proc> <name> <n>` for each job of the cluster

Every job runs in `jobs/` (its initialdir). Each submission (one schedd transaction) writes one batch file,
created exclusively: its number `n` numbers the attempts of every job it holds, so two attempts never share
files, and job.sh hands the worker `<name>.<n>.job.json` and the batch file (the worker reads its line and
writes its files under that name). With file transfer, a job is sent the chunk of the batch file that holds
it, not the whole batch. Every job carries +GridpipeAnalysis (a key from the analysis's absolute path),
+GridpipeJob (its name) and +GridpipeAttempt (n): after a crash the schedd's queue and history find the
jobs of an analysis by these attributes, and their files again.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gridpipe.analysis.naming import is_safe_name
from gridpipe.backends.batch_folders import (
    AttemptFolder,
    analysis_key,
    job_document,
    worker_script,
    write_new,
)
from gridpipe.backends.htcondor_settings import HTCondorSection
from gridpipe.core.exceptions import BackendError
from gridpipe.core.models import JobSpec
from gridpipe.worker.records import JOB_SUFFIX, batch_line

SCRIPT = "job.sh"
BATCH_SUFFIX = ".jobs"
CHUNK = 20
"""Jobs per chunk of a batch file, with file transfer: a job is sent its chunk, never the whole batch."""
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+=@,%/-]*$")
_ID = re.compile(r"^\d+\.\d+$")


def is_condor_id(value: str) -> bool:
    return value.isascii() and bool(_ID.match(value))


@dataclass
class JobFolders:
    """The folders of one analysis's HTCondor jobs, and which job id runs in which (one small file per
    cluster, `clusters/<cluster>`: one line `<proc> <name> <attempt>` per job, written once per transaction)."""

    analysis_path: Path
    _clusters: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict, repr=False)

    @property
    def root(self) -> Path:
        return self.analysis_path / ".gridpipe" / "htcondor"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def script(self) -> Path:
        """The executable of every job of the analysis (it runs the worker on the job file beside it)."""
        return self.root / SCRIPT

    def ensure_script(self, python: str) -> None:
        """Write the jobs' executable when it is missing or names another python (atomically)."""
        text = job_script(python)
        try:
            if self.script.read_text(encoding="utf-8") == text:
                return
        except OSError:
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        _replace(self.script, text, 0o755)

    @property
    def batches(self) -> Path:
        return self.root / "batches"

    def batch_file(self, n: int | str) -> Path:
        return self.batches / f"{n}{BATCH_SUFFIX}"

    def chunk_file(self, n: int | str, chunk: int | str) -> Path:
        return self.batches / f"{n}.{chunk}{BATCH_SUFFIX}"

    def new_batch(self, specs: list[JobSpec], env: dict[str, str], file_transfer: bool) -> Batch:
        """The next submission's batch file, holding every job (one file made for the whole batch), and with
        file transfer its chunks of CHUNK jobs (each job is sent its chunk). Numbers are found by trying the
        next one: a batch file is never deleted while the schedd may still hold its jobs."""
        jobs = [job_document(self.analysis_path, spec, env) for spec in specs]
        n = self._last_batch() + 1
        while True:
            lines = [batch_line(f"{spec.name}.{n}", job) for spec, job in zip(specs, jobs, strict=True)]
            try:
                write_new(self.batch_file(n), "".join(lines), 0o644)
                break
            except FileExistsError:
                n += 1
            except FileNotFoundError:
                self.batches.mkdir(parents=True, exist_ok=True)
        self.jobs.mkdir(exist_ok=True)
        if file_transfer:
            for start in range(0, len(lines), CHUNK):
                write_new(self.chunk_file(n, start // CHUNK), "".join(lines[start : start + CHUNK]), 0o644)
        folders = [self.attempt(spec.name, n) for spec in specs]
        items = [item(spec.name, i, file_transfer) for i, spec in enumerate(specs)]
        return Batch(n, folders, items)

    def _last_batch(self) -> int:
        """The highest batch number; before the first batch file, the highest attempt number of the job files
        an earlier gridpipe made (one per job), so that no attempt takes the name of an earlier one."""
        try:  # <n>.jobs, not the chunks <n>.<k>.jobs
            names = os.listdir(self.batches)
            numbers = (name.removesuffix(BATCH_SUFFIX) for name in names if name.endswith(BATCH_SUFFIX))
        except FileNotFoundError:
            try:  # <name>.<n>.job.json
                names = os.listdir(self.jobs)
            except FileNotFoundError:
                return 0
            numbers = (
                name.removesuffix(JOB_SUFFIX).rsplit(".", 1)[-1]
                for name in names
                if name.endswith(JOB_SUFFIX)
            )
        return max((int(number) for number in numbers if number.isdigit()), default=0)

    def attempt(self, name: str, n: int) -> AttemptFolder:
        return AttemptFolder(self.jobs, name, n, stem=f"{name}.{n}")

    def record(self, jobs: dict[str, AttemptFolder]) -> None:
        """Record which folder each HTCondor job id runs in (one file per cluster, merged atomically)."""
        by_cluster: dict[str, dict[str, tuple[str, int]]] = {}
        for condor_id, folder in jobs.items():
            cluster, proc = condor_id.split(".")
            by_cluster.setdefault(cluster, {})[proc] = (folder.name, folder.attempt)
        for cluster, procs in by_cluster.items():
            known = self._cluster(cluster, cached=False)
            if all(known.get(p) == v for p, v in procs.items()):
                continue
            merged = {**known, **procs}
            lines = "".join(
                f"{p} {name} {n}\n" for p, (name, n) in sorted(merged.items(), key=lambda i: int(i[0]))
            )
            (self.root / "clusters").mkdir(parents=True, exist_ok=True)
            _replace(self.root / "clusters" / cluster, lines, 0o644)
            self._clusters[cluster] = merged

    def _cluster(self, cluster: str, cached: bool = True) -> dict[str, tuple[str, int]]:
        if cached and cluster in self._clusters:
            return self._clusters[cluster]
        procs: dict[str, tuple[str, int]] = {}
        try:
            text = (self.root / "clusters" / cluster).read_text(encoding="utf-8")
        except OSError:
            return procs
        for line in text.splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[0].isdigit() and is_safe_name(parts[1]) and parts[2].isdigit():
                procs[parts[0]] = (parts[1], int(parts[2]))
        self._clusters[cluster] = procs
        return procs

    def linked_at(self, condor_id: str) -> float | None:
        """When the job's cluster was recorded (about when it was submitted); None when it is not."""
        try:
            return (self.root / "clusters" / condor_id.split(".")[0]).stat().st_mtime
        except OSError:
            return None

    def by_id(self, condor_id: str) -> AttemptFolder | None:
        """The attempt folder of an HTCondor job id this analysis submitted, None for others."""
        if not is_condor_id(condor_id):
            return None
        cluster, proc = condor_id.split(".")
        found = self._cluster(cluster).get(proc)
        if found is None:
            found = self._cluster(cluster, cached=False).get(proc)  # recorded since by another process
        return self.attempt(*found) if found is not None else None


@dataclass(frozen=True)
class Batch:
    """One submission's jobs: the batch file's number (every job's attempt) and each job's attempt."""

    number: int
    folders: list[AttemptFolder]
    items: list[dict[str, str]]
    """Each job's item data (`item`)."""


def _replace(path: Path, text: str, mode: int) -> None:
    """Write `path` whole or not at all (a temporary file of this process, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # left by a killed process that had this pid
    write_new(tmp, text, mode)
    os.replace(tmp, path)


def job_script(python: str) -> str:
    """The jobs' executable: exec the job worker on its arguments (a job file, and the batch file holding it)."""
    return worker_script(python, None)


def check_path(path: Path, what: str) -> str:
    """`path` as text, when a submit description can carry it as it is (else BackendError naming it)."""
    text = str(path)
    if not SAFE_PATH.match(text):
        raise BackendError(
            f"{what} {text!r} cannot be handed to HTCondor: use a path of letters, digits and ._+=@,%/- only"
        )
    return text


def batch_name(analysis_path: Path) -> str:
    """The JobBatchName users see in condor_q: gridpipe and the analysis's folder name."""
    name = analysis_path.name
    return f"gridpipe-{name}" if is_safe_name(name) else f"gridpipe-{analysis_key(analysis_path)}"


def description(settings: HTCondorSection, folders: JobFolders, key: str, batch: int | str) -> dict[str, str]:
    """The submit description of the jobs of batch file `batch`; each job's name comes as item data."""
    jobs = check_path(folders.jobs, "the analysis's job folder")
    stem = f"$(GridpipeName).{batch}"
    s = settings
    desc = {
        "universe": s.universe,
        "executable": check_path(folders.script, "the jobs' script"),
        "arguments": f"{stem}.job.json",
        "initialdir": jobs,
        "output": f"{stem}.condor.out",
        "error": f"{stem}.condor.err",
        "batch_name": batch_name(folders.analysis_path),
        "+GridpipeAnalysis": f'"{key}"',
        "+GridpipeJob": '"$(GridpipeName)"',
        "+GridpipeAttempt": str(batch),
        "request_cpus": str(s.request_cpus),
    }
    if s.file_transfer:
        chunk = f"{batch}.$(GridpipeChunk){BATCH_SUFFIX}"
        desc.update(
            arguments=f"{stem}.job.json {chunk}",
            should_transfer_files="YES",
            when_to_transfer_output="ON_EXIT_OR_EVICT",
            transfer_executable="true",
            transfer_input_files=f"{check_path(folders.batches, 'the batch folder')}/{chunk}",
        )
    else:
        batch_file = check_path(folders.batch_file(batch), "the batch file")
        desc.update(
            arguments=f"{stem}.job.json {batch_file}", should_transfer_files="NO", transfer_executable="false"
        )
    optional = {
        "request_memory": s.request_memory,
        "request_disk": s.request_disk,
        "requirements": s.requirements,
        "accounting_group": s.accounting_group,
        "container_image": s.container_image,
    }
    desc.update({k: v for k, v in optional.items() if v})
    desc.update(s.extra_submit)
    return desc


def item(name: str, index: int, file_transfer: bool) -> dict[str, str]:
    """The item data of the `index`-th job of a batch: its name, and with file transfer its chunk."""
    if file_transfer:
        return {"GridpipeName": name, "GridpipeChunk": str(index // CHUNK)}
    return {"GridpipeName": name}


def describe_text(desc: dict[str, str], items: list[dict[str, str]]) -> str:
    """The description as condor_submit would read it (for dry runs)."""
    lines = [f"{k} = {v}" for k, v in desc.items()]
    keys = list(items[0]) if items else []
    lines.append(f"queue {','.join(keys)} from (")
    lines += [" " + ",".join(i[k] for k in keys) for i in items]
    return "\n".join([*lines, ")"])
