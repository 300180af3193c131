"""All gridpipe errors. Each carries a one-line `detail` and the exit code the CLI uses."""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class GridpipeError(Exception):
    """Base error: `detail` is the one-line message shown to the user."""

    exit_code = EXIT_FAILED

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UsageError(GridpipeError):
    """Bad command-line value or bad input given by the user."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A configuration or input file is invalid; names the file, the key, the line and the fix."""

    def __init__(self, file: Path | str, message: str, *, key: str = "", line: int | None = None) -> None:
        self.file = str(file)
        self.key = key
        self.line = line
        where = self.file if line is None else f"{self.file}:{line}"
        self.message = f"key '{key}': {message}" if key else message
        super().__init__(f"{where}: {self.message}")


class ConfigErrors(UsageError):
    """Several configuration errors found at once (each one line)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.detail for e in errors))


class AnalysisNotFoundError(UsageError):
    """No analysis directory at or above the given path."""


class AnalysisExistsError(UsageError):
    """The analysis directory exists and --overwrite was not given."""


class NotImplementedYetError(GridpipeError):
    """A command exists in the CLI surface but its logic has not landed yet."""


class BackendError(GridpipeError):
    """A backend (local, dirac, slurm, htcondor) failed or answered something unusable."""


class StorageError(GridpipeError):
    """A storage operation failed (listing, get, put, checksum mismatch, bad LFN)."""


class CannotMergeError(GridpipeError, OSError):
    """HDF5 inputs cannot be merged (schema mismatch); names the file and the table."""


class DatabaseFileError(GridpipeError):
    """A gridpipe database file is damaged, foreign, unreadable or cannot be written; names the file."""

    def __init__(self, path: Path | str, problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{self.path}: {problem}; {fix}")


class ReadOnlyError(DatabaseFileError):
    """A command that must write was run on an analysis this user cannot write (another user's, a
    read-only mount)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "cannot be written (read-only file, folder or file system)",
            "this command changes the analysis: run it as the analysis's owner or on a writable copy "
            "(reading works: status --no-refresh, status --json, logs, submit --dry-run)",
        )


class DiskFullError(DatabaseFileError):
    """The file system holding a gridpipe file is full; nothing half-written was kept."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "the file system is full",
            "free some space there and run the command again (nothing was lost)",
        )
