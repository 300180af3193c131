"""Verified parallel download and sync recovery: compare a remote folder with a local one, fetch the difference.

Files are compared by name, size and Adler-32; the storage's `get` verifies every copy and renames it into
place only when it is right, so a download killed at any moment leaves no incomplete file under a final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from gridpipe.core.exceptions import GridpipeError, StorageError, UsageError
from gridpipe.storage.checksum import adler32_file, same_adler32
from gridpipe.storage.contract import FileInfo, Storage

DEFAULT_IGNORE = ("*_merged.h5",)
"""Local files that are never extras: the merged outputs made from the downloads."""

Progress = Callable[[FileInfo, bool], None]
_TEMP_RE = re.compile(r"\.(?P<target>.+)\.[^.]+\.(?:part|tmp)")


def temp_target(name: str) -> str | None:
    """The final name a temp file of an atomic write (`.NAME.XXXX.part|tmp`) was for, else None."""
    found = _TEMP_RE.fullmatch(name)
    return found["target"] if found else None


def local_name(lfn: str) -> str:
    """The file name an LFN is downloaded under."""
    return lfn[lfn.rfind("/") + 1 :] if lfn[-1:] not in ("/", ".") else PurePosixPath(lfn).name


@dataclass(frozen=True)
class Mismatch:
    """A local file that differs from the remote one, and how."""

    file: FileInfo
    reason: str


@dataclass(frozen=True)
class SyncPlan:
    """What a local folder lacks compared with a remote listing."""

    ok: list[FileInfo]
    missing: list[FileInfo]
    wrong: list[Mismatch]
    extra: list[Path]
    partial: list[Path]
    """Temp files left by interrupted atomic writes."""

    @property
    def to_fetch(self) -> list[FileInfo]:
        """Missing and wrong files, sorted by LFN."""
        return sorted([*self.missing, *(m.file for m in self.wrong)], key=lambda f: f.lfn)


@dataclass(frozen=True)
class Failure:
    """A file that could not be downloaded and verified, after `attempts` tries."""

    file: FileInfo
    reason: str
    attempts: int


@dataclass
class DownloadReport:
    """Files downloaded and verified, files that failed (with reasons), and `get` calls made."""

    downloaded: list[FileInfo] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    attempts: int = 0

    @property
    def n_bytes(self) -> int:
        """Bytes downloaded and verified."""
        return sum(f.size for f in self.downloaded)


@dataclass(frozen=True)
class SyncReport:
    """The plan a sync made, what its download did, and the extra files it deleted."""

    plan: SyncPlan
    download: DownloadReport
    deleted: list[Path]

    @property
    def complete(self) -> bool:
        """Whether every remote file is now present and verified locally."""
        return not self.download.failures


def plan_sync(
    remote: Sequence[FileInfo], local_dir: Path, *, ignore: Iterable[str] = DEFAULT_IGNORE, jobs: int = 4
) -> SyncPlan:
    """Compare `remote` with the files in `local_dir` (checksums only where sizes match, `jobs` at once)."""
    wanted = _by_name(remote)
    local = _local_files(Path(local_dir))
    same_size = [(f, local[n]) for n, f in wanted.items() if n in local and local[n][1] == f.size]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        sums = dict(zip([f.lfn for f, _ in same_size], pool.map(_local_sum, same_size), strict=True))
    ok: list[FileInfo] = []
    missing: list[FileInfo] = []
    wrong: list[Mismatch] = []
    for name, info in wanted.items():
        if name not in local:
            missing.append(info)
        elif local[name][1] != info.size:
            wrong.append(Mismatch(info, f"size {local[name][1]}, expected {info.size}"))
        elif (got := sums[info.lfn]) is not None and not same_adler32(got, info.adler32):
            wrong.append(Mismatch(info, f"adler32 {got}, expected {info.adler32}"))
        else:
            ok.append(info)
    patterns = list(ignore)
    others = [path for name, (path, _) in sorted(local.items()) if name not in wanted]
    partial = [p for p in others if temp_target(p.name) is not None]
    extra = [
        p for p in others if temp_target(p.name) is None and not any(fnmatchcase(p.name, g) for g in patterns)
    ]
    return SyncPlan(ok, missing, wrong, extra, partial)


def download(
    storage: Storage,
    files: Sequence[FileInfo],
    local_dir: Path,
    *,
    jobs: int = 4,
    retries: int = 2,
    progress: Progress | None = None,
) -> DownloadReport:
    """Get `files` into `local_dir`, `jobs` at a time (at most what the storage says pays off), each
    verified and retried `retries` times."""
    if jobs < 1 or retries < 0:
        raise UsageError(f"download: jobs must be at least 1 (got {jobs}) and retries at least 0 ({retries})")
    _by_name(files)
    report = DownloadReport()
    dest = Path(local_dir)

    def record(info: FileInfo, outcome: tuple[FileInfo | None, int, str]) -> None:
        entry, attempts, reason = outcome
        report.attempts += attempts
        if entry is not None:
            report.downloaded.append(entry)
        else:
            report.failures.append(Failure(info, reason, attempts))
        if progress is not None:
            progress(info, entry is not None)

    workers = max(1, min(jobs, storage.parallel_transfers, len(files)))
    if workers == 1:
        for info in files:
            record(info, _fetch(storage, info, dest / local_name(info.lfn), retries))
    else:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gridpipe-get")
        try:
            futures = {pool.submit(_fetch, storage, f, dest / local_name(f.lfn), retries): f for f in files}
            for future in as_completed(futures):
                record(futures[future], future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    report.downloaded.sort(key=lambda f: f.lfn)
    report.failures.sort(key=lambda f: f.file.lfn)
    return report


def sync(
    storage: Storage,
    lfn_dir: str,
    local_dir: Path,
    *,
    jobs: int = 4,
    retries: int = 2,
    delete_extra: bool = False,
    ignore: Iterable[str] = DEFAULT_IGNORE,
    pattern: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Make `local_dir` hold every file below `lfn_dir` whose name matches `pattern`, verified."""
    remote = storage.list(lfn_dir)
    if pattern is not None:
        remote = [f for f in remote if fnmatchcase(local_name(f.lfn), pattern)]
    plan = plan_sync(remote, local_dir, ignore=ignore, jobs=jobs)
    if pattern is not None:
        plan = replace(
            plan,
            extra=[p for p in plan.extra if fnmatchcase(p.name, pattern)],
            partial=[p for p in plan.partial if fnmatchcase(temp_target(p.name) or "", pattern)],
        )
    if delete_extra and not remote and plan.extra:
        raise StorageError(
            f"the storage lists no file below {lfn_dir}, so all {len(plan.extra)} local file(s) in {local_dir} "
            "look extra; nothing was deleted: check the storage configuration (a moved or new storage?)"
        )
    report = download(storage, plan.to_fetch, local_dir, jobs=jobs, retries=retries, progress=progress)
    deleted = _delete([*plan.extra, *plan.partial]) if delete_extra else []
    return SyncReport(plan, report, deleted)


def _fetch(storage: Storage, info: FileInfo, dest: Path, retries: int) -> tuple[FileInfo | None, int, str]:
    """Get one file, retrying; return (entry or None, attempts made, last reason)."""
    reason = ""
    for attempt in range(1, retries + 2):
        try:
            return storage.get(info.lfn, dest), attempt, ""
        except GridpipeError as exc:
            reason = exc.detail
        except Exception as exc:  # one bad file never stops the others; its reason is reported
            reason = f"{type(exc).__name__}: {exc}"
    return None, retries + 1, reason


def _by_name(files: Iterable[FileInfo]) -> dict[str, FileInfo]:
    """Files by local name; UsageError when two LFNs would land on the same name."""
    named: dict[str, FileInfo] = {}
    for info in files:
        other = named.setdefault(local_name(info.lfn), info)
        if other is not info:
            raise UsageError(
                f"{other.lfn} and {info.lfn} have the same file name and cannot be downloaded into one "
                "folder; choose a narrower LFN folder or a file name pattern"
            )
    return named


def _local_files(local_dir: Path) -> dict[str, tuple[Path, int]]:
    """Regular files directly in `local_dir` by name, with their sizes."""
    if not local_dir.is_dir():
        return {}
    with os.scandir(local_dir) as entries:
        return {e.name: (Path(e.path), e.stat().st_size) for e in entries if e.is_file()}


def _local_sum(pair: tuple[FileInfo, tuple[Path, int]]) -> str | None:
    """Adler-32 of the local copy (or why it is unreadable); None when the remote has no checksum."""
    info, (path, _) = pair
    if not info.adler32:
        return None
    try:
        return adler32_file(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _delete(paths: Iterable[Path]) -> list[Path]:
    """Delete `paths`; return them."""
    deleted = []
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {path}: {exc.strerror}; delete it by hand") from exc
        deleted.append(path)
    return deleted
