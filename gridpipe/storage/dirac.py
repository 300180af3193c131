"""The `dirac` storage: DIRAC data management through DIRAC's own client commands (`dirac-dms-*`).

Listing is `dirac-dms-find-lfns Path=<dir>` plus `dirac-dms-lfn-metadata` for many LFNs per call; a get runs
`dirac-dms-get-file` in a private folder beside the destination, checks size and Adler-32 against the
catalogue and only then renames the file into place; a put is `dirac-dms-add-file` (with a fresh GUID: DIRAC
would otherwise derive it from the content and refuse a second LFN with the same bytes), one
`dirac-dms-replicate-lfn` per extra storage element, and a check of the checksum the catalogue recorded.
Entries read by list/stat/put are remembered, so a sync's gets need no metadata call; a copy that does not
match a remembered entry is checked again against a fresh one before it is refused.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import Field

from gridpipe.analysis.config import Strict
from gridpipe.core.exceptions import StorageError, UsageError
from gridpipe.storage import dirac_commands as cmd
from gridpipe.storage.checksum import adler32_file, same_adler32
from gridpipe.storage.contract import FileInfo, Storage, remove_moved_source
from gridpipe.storage.dirac_output import (
    NO_SUCH_FILE,
    find_lfns,
    metadata_entries,
    remove_failures,
    replica_table,
)

if TYPE_CHECKING:
    from gridpipe.analysis.config import GridConfig

CHUNK = 500
"""Most LFNs given to one metadata or remove command."""


class DiracStorageSettings(Strict):
    """`storage.dirac` of configs/grid.yaml."""

    se: str = Field("", description="Storage element files are put to ('' = the first of grid.upload_sites).")
    command_timeout: float = Field(
        900.0, gt=0, description="Seconds one DIRAC data-management command may run."
    )
    bin_dir: str = Field("", description="Folder holding DIRAC's dirac-dms-* commands ('' = found on PATH).")


class DiracStorage(Storage):
    """DIRAC's file catalogue and storage elements, driven through the DIRAC client commands."""

    name = "dirac"
    settings_model: ClassVar[type[Strict]] = DiracStorageSettings

    def __init__(self, commands: cmd.DiracCommands, *, se: str = "") -> None:
        self.commands = commands
        self.se = se
        self._seen: dict[str, FileInfo] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, grid: GridConfig, analysis_path: Path) -> Self:
        """Commands from `storage.dirac.bin_dir` or PATH; puts go to `storage.dirac.se` or the first upload site."""
        section = grid.storage.settings_for(cls.name, DiracStorageSettings)
        bin_dir = Path(section.bin_dir).expanduser() if section.bin_dir else None
        if bin_dir is not None and not bin_dir.is_absolute():
            bin_dir = analysis_path / bin_dir
        se = section.se or next(iter(grid.grid.upload_sites), "")
        return cls(cmd.DiracCommands.locate(bin_dir, section.command_timeout), se=se)

    def list(self, lfn_dir: str) -> list[FileInfo]:
        """Every file below `lfn_dir`: one find-lfns call, then metadata for up to CHUNK LFNs per call."""
        folder = cmd.checked_folder(lfn_dir)
        with _scratch() as work:
            result = self.commands.run(cmd.FIND_LFNS, [f"Path={folder}"], cwd=work, what=f"list {folder}")
        if result.returncode != 0:
            if "does not exist or is not a directory" in result.output:
                return []
            raise StorageError(cmd.failure(cmd.FIND_LFNS, f"list {folder}", result))
        found = self.stat(find_lfns(result.stdout, folder))
        return sorted(found.values(), key=lambda f: f.lfn)

    def stat(self, lfns: Sequence[str]) -> dict[str, FileInfo]:
        """Catalogue entries of those `lfns` that are files, from metadata calls of up to CHUNK LFNs."""
        wanted = [cmd.checked_lfn(lfn) for lfn in dict.fromkeys(lfns)]
        found: dict[str, FileInfo] = {}
        for start in range(0, len(wanted), CHUNK):
            found.update(self._metadata(wanted[start : start + CHUNK]))
        with self._lock:
            self._seen.update(found)
        return found

    def get(self, lfn: str, dest: Path) -> FileInfo:
        """Download `lfn` beside `dest`, verify size and Adler-32, then rename it to `dest`."""
        lfn = cmd.checked_lfn(lfn)
        with self._lock:
            entry = self._seen.get(lfn)
        cached = entry is not None
        entry = entry or self._entry(lfn)
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"get {lfn}: cannot create {dest.parent}: {exc.strerror}") from exc
        with _scratch(dest) as work:
            self.commands.check(cmd.GET_FILE, cmd.lfn_arguments([lfn], work), cwd=work, what=f"get {lfn}")
            got = work / PurePosixPath(lfn).name
            if not got.is_file():
                raise StorageError(f"get {lfn}: {cmd.GET_FILE} reported success but wrote no {got.name}")
            size, adler = got.stat().st_size, adler32_file(got)
            if cached and not _matches(entry, size, adler):
                entry = self._entry(lfn)  # the catalogue may have changed since it was listed
            if not _matches(entry, size, adler):
                raise StorageError(
                    f"get {lfn}: the downloaded copy does not match the catalogue: size {size} adler32 "
                    f"{adler}, expected size {entry.size} adler32 {entry.adler32}; replace the file on the grid"
                )
            os.replace(got, dest)
        return entry

    def put(self, src: Path, lfn: str, *, replicas: Sequence[str] = (), move: bool = False) -> FileInfo:
        """Add `src` as `lfn` (replacing it) at the upload SE, replicate it, check the catalogue's checksum.

        With `move`, `src` is removed once all of that succeeded.
        """
        lfn, src = cmd.checked_lfn(lfn), Path(src)
        ses = [cmd.checked_se(se) for se in dict.fromkeys(replicas)]
        if not src.is_file():
            raise StorageError(f"put {src} as {lfn}: no such local file")
        size, local = src.stat().st_size, adler32_file(src)
        if size == 0:
            raise StorageError(f"put {src} as {lfn}: the file is empty and DIRAC refuses empty files")
        se = self._upload_se()
        guid = str(uuid.uuid4()).upper()
        with _scratch() as work:
            args = ["-f", lfn, str(src.resolve()), se, guid]
            self.commands.check(cmd.ADD_FILE, args, cwd=work, what=f"put {src} as {lfn} at {se}")
            for other in (s for s in ses if s != se):
                self.commands.check(
                    cmd.REPLICATE_LFN, [lfn, other], cwd=work, what=f"replicate {lfn} to {other}"
                )
        entry = self.stat([lfn]).get(lfn)
        if entry is None or entry.size != size or not same_adler32(entry.adler32, local):
            recorded = "nothing" if entry is None else f"size {entry.size} adler32 {entry.adler32}"
            raise StorageError(
                f"put {src} as {lfn}: the catalogue records {recorded}, the local file has size {size} "
                f"adler32 {local}; put it again"
            )
        if move:
            remove_moved_source(src, lfn)
        return entry

    def remove(self, lfns: Sequence[str]) -> None:
        """Remove files (every replica and the catalogue entry), up to CHUNK per call; missing ones are ignored."""
        wanted = [cmd.checked_lfn(lfn) for lfn in dict.fromkeys(lfns)]
        with self._lock:
            for lfn in wanted:
                self._seen.pop(lfn, None)
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            what = f"remove {chunk[0]}" + (f" and {len(chunk) - 1} more" if len(chunk) > 1 else "")
            with _scratch() as work:
                result = self.commands.check(
                    cmd.REMOVE_FILES, cmd.lfn_arguments(chunk, work), cwd=work, what=what
                )
            failed = [(n, why) for n, why in remove_failures(result.output) if why != NO_SUCH_FILE]
            if failed:
                raise StorageError(
                    f"{what}: {cmd.REMOVE_FILES} failed for {failed[0][0]} file(s): {failed[0][1]}"
                )

    def replicas(self, lfn: str) -> list[str]:
        """Names of the storage elements holding `lfn` (inactive ones too), sorted; [] when it does not exist."""
        lfn = cmd.checked_lfn(lfn)
        with _scratch() as work:
            args = ["-a", *cmd.lfn_arguments([lfn], work)]
            result = self.commands.check(cmd.LFN_REPLICAS, args, cwd=work, what=f"replicas of {lfn}")
        found, failed = replica_table(result.stdout)
        if lfn in failed and failed[lfn] != NO_SUCH_FILE:
            raise StorageError(f"replicas of {lfn}: {cmd.LFN_REPLICAS} failed: {failed[lfn]}")
        return found.get(lfn, [])

    def _metadata(self, lfns: list[str]) -> dict[str, FileInfo]:
        """Files among `lfns` (one metadata call); StorageError for failures other than a missing LFN."""
        what = f"metadata of {lfns[0]}" + (f" and {len(lfns) - 1} more" if len(lfns) > 1 else "")
        with _scratch() as work:
            result = self.commands.check(cmd.LFN_METADATA, cmd.lfn_arguments(lfns, work), cwd=work, what=what)
        entries, failed = metadata_entries(result.stdout, what)
        bad = {lfn: why for lfn, why in failed.items() if why != NO_SUCH_FILE}
        if bad:
            lfn, why = next(iter(bad.items()))
            raise StorageError(f"{lfn}: the DIRAC file catalogue answered {why!r}")
        asked = set(lfns)
        return {lfn: info for lfn, info in entries.items() if info is not None and lfn in asked}

    def _entry(self, lfn: str) -> FileInfo:
        """The catalogue entry of `lfn`; StorageError when it is not a file in the catalogue."""
        entry = self.stat([lfn]).get(lfn)
        if entry is None:
            raise StorageError(f"{lfn}: no such file in the DIRAC file catalogue")
        return entry

    def _upload_se(self) -> str:
        """The storage element puts go to; UsageError when none is configured."""
        if not self.se:
            raise UsageError(
                "configs/grid.yaml: no storage element to upload to; set storage.dirac.se or grid.upload_sites"
            )
        return cmd.checked_se(self.se)


def _matches(entry: FileInfo, size: int, adler: str) -> bool:
    """Whether a local copy of `size` bytes and checksum `adler` is the catalogue's `entry`."""
    return size == entry.size and (not entry.adler32 or same_adler32(adler, entry.adler32))


@contextmanager
def _scratch(beside: Path | None = None) -> Iterator[Path]:
    """A private working folder (beside `beside`, for a same-filesystem rename), removed afterwards."""
    if beside is None:
        path = Path(tempfile.mkdtemp(prefix="gridpipe-dirac-"))
    else:
        path = beside.with_name(f".{beside.name}.{secrets.token_hex(4)}.dirac")
        try:
            path.mkdir()
        except OSError as exc:
            raise StorageError(f"cannot create the download folder {path}: {exc.strerror}") from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
