"""Run DIRAC's data-management commands (found on PATH or in a configured folder) and check their arguments.

Each command runs in its own process group with stdin closed (DIRAC never gets to prompt), so a timeout
kills it and whatever it started. `DIRAC_NO_CFG=1` makes DIRAC take an argument ending in `.cfg` as an
argument, not as a configuration file to load.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from gridpipe.analysis.naming import lfn_problem
from gridpipe.core.exceptions import StorageError, UsageError
from gridpipe.storage.dirac_output import summary

FIND_LFNS = "dirac-dms-find-lfns"
LFN_METADATA = "dirac-dms-lfn-metadata"
GET_FILE = "dirac-dms-get-file"
ADD_FILE = "dirac-dms-add-file"
REPLICATE_LFN = "dirac-dms-replicate-lfn"
REMOVE_FILES = "dirac-dms-remove-files"
LFN_REPLICAS = "dirac-dms-lfn-replicas"
COMMANDS = (FIND_LFNS, LFN_METADATA, GET_FILE, ADD_FILE, REPLICATE_LFN, REMOVE_FILES, LFN_REPLICAS)
"""Every DIRAC client command the `dirac` storage runs."""
LIST_FILE_NAME = "lfns.txt"
_QUERY_CHARS = set("<>=!,'\"")
"""Characters DIRAC's metadata query parser reads as operators, lists or quotes in `Path=<dir>`."""


@dataclass(frozen=True)
class CommandResult:
    """Exit code and output of one command."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Standard output then standard error (DIRAC prints most errors on standard output)."""
        return f"{self.stdout}\n{self.stderr}"


class DiracCommands:
    """The DIRAC client commands by name, run with a timeout."""

    def __init__(self, paths: dict[str, str], timeout: float) -> None:
        self.paths = dict(paths)
        self.timeout = timeout

    @classmethod
    def locate(cls, bin_dir: Path | None, timeout: float) -> Self:
        """Find every command in `bin_dir` or on PATH; UsageError naming the missing ones."""
        where = str(bin_dir) if bin_dir is not None else None
        paths = {name: shutil.which(name, path=where) for name in COMMANDS}
        missing = [name for name, path in paths.items() if path is None]
        if missing:
            place = f"in storage.dirac.bin_dir {bin_dir}" if bin_dir is not None else "on PATH"
            raise UsageError(
                f"configs/grid.yaml key 'storage.name': storage 'dirac' needs DIRAC's client commands, but "
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not {place}; install DIRAC's "
                "client (and source its bashrc) or use storage: local"
            )
        return cls({name: str(path) for name, path in paths.items()}, timeout)

    def run(self, name: str, args: Sequence[str], *, cwd: Path, what: str) -> CommandResult:
        """Run command `name` with `args` in `cwd`; StorageError if it cannot start or times out."""
        argv = [self.paths[name], *args]
        env = {**os.environ, "DIRAC_NO_CFG": "1"}
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise StorageError(f"{what}: cannot run {name} ({self.paths[name]}): {exc.strerror}") from exc
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise StorageError(
                f"{what}: {name} did not finish within {self.timeout:g} s; check the DIRAC services or raise "
                "storage.dirac.command_timeout in configs/grid.yaml"
            ) from None
        except BaseException:
            _kill(proc)
            raise
        return CommandResult(proc.returncode, stdout, stderr)

    def check(self, name: str, args: Sequence[str], *, cwd: Path, what: str) -> CommandResult:
        """Run like `run`; StorageError naming the command and its error lines when it exits non-zero."""
        result = self.run(name, args, cwd=cwd, what=what)
        if result.returncode != 0:
            raise StorageError(failure(name, what, result))
        return result


def failure(name: str, what: str, result: CommandResult) -> str:
    """A one-line message for a failed command: what was done, the exit code and its error lines."""
    text = summary(result.output)
    hint = "; check your DIRAC proxy (dirac-proxy-init)" if "proxy" in text.lower() else ""
    return f"{what}: {name} failed (exit {result.returncode}): {text}{hint}"


def lfn_arguments(lfns: Sequence[str], scratch: Path) -> list[str]:
    """`lfns` as arguments; through a list file when the first one names a local path (DIRAC reads those)."""
    if not os.path.lexists(lfns[0]):
        return list(lfns)
    listing = scratch / LIST_FILE_NAME
    listing.write_text("".join(f"{lfn}\n" for lfn in lfns), encoding="utf-8")
    return [str(listing)]


def checked_lfn(lfn: str) -> str:
    """`lfn`, or StorageError when it is not a valid file LFN for DIRAC's commands."""
    problem = lfn_problem(lfn)
    if problem is None and (lfn.endswith("/") or "LFN:" in lfn or "lfn:" in lfn):
        problem = "an LFN must name a file and may not contain 'LFN:' (DIRAC strips that prefix)"
    if problem:
        raise StorageError(f"LFN {lfn!r}: {problem}")
    return lfn


def checked_folder(lfn_dir: str) -> str:
    """`lfn_dir` without a trailing '/', or StorageError when DIRAC's `Path=` query cannot name it."""
    problem = lfn_problem(lfn_dir)
    folder = lfn_dir.rstrip("/")
    if problem is None and not folder:
        problem = "list a folder below the root ('/' itself cannot be listed)"
    if problem is None and _QUERY_CHARS & set(folder):
        problem = (
            f"dirac-dms-find-lfns cannot query a folder containing any of {''.join(sorted(_QUERY_CHARS))}"
        )
    if problem:
        raise StorageError(f"LFN folder {lfn_dir!r}: {problem}")
    return folder


def checked_se(se: str) -> str:
    """`se`, or StorageError when it is not a plausible storage element name."""
    if not se or se.startswith("-") or any(c.isspace() or not c.isprintable() for c in se):
        raise StorageError(
            f"storage element {se!r}: names may not be empty, start with '-' or contain spaces"
        )
    return se


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill the process group of `proc` and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
