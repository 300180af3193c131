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
    """No analysis at or above `start` (the path given, or the current directory); `exists`: whether
    `start` exists at all; `marker`: the file that marks an analysis root."""

    def __init__(self, start: Path, *, given: bool, exists: bool, marker: str) -> None:
        self.start, self.given, self.exists, self.marker = start, given, exists, marker
        if not exists:
            detail = f"{start}: no such directory"
        else:
            where = str(start) if given else f"the current directory {start}"
            detail = f"{where} is not inside an analysis (no {marker} found); create the analysis first"
        super().__init__(detail)


class AnalysisExistsError(UsageError):
    """The analysis directory exists and --overwrite was not given."""


class NotImplementedYetError(GridpipeError):
    """A command exists in the CLI surface but its logic has not landed yet."""


class BackendError(GridpipeError):
    """A backend (local, dirac, slurm, htcondor) failed or answered something unusable."""


class MissingPackageError(UsageError):
    """A plugin needs a package that is not installed (`package`: the module that failed to import;
    `install`: how to get it). Not an outage: nothing was submitted and waiting does not help."""

    def __init__(self, package: str, install: str, detail: str | None = None) -> None:
        self.package, self.install = package, install
        super().__init__(detail or f"{package} cannot be imported: {install}")

    @classmethod
    def of(cls, exc: ImportError) -> MissingPackageError:
        """The error for an import that failed inside a plugin (a package not installed, or broken)."""
        package = exc.name or str(exc)
        return cls(package, f"install the package that provides {package.split('.')[0]} (pip install ...)")


class StorageError(GridpipeError):
    """A storage operation failed (listing, get, put, checksum mismatch, bad LFN)."""


class CannotMergeError(GridpipeError, OSError):
    """HDF5 inputs cannot be merged (schema mismatch); names the file and the table."""


# ---- errors of the engine: they carry data; the edges (CLI, API) word them ------------------------------


class StageNotFoundError(UsageError):
    """No stage of this name in the workflow."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name, self.known = name, known
        super().__init__(f"no stage {name!r} in the workflow; known: {', '.join(known)}")


class StageChoiceError(UsageError):
    """No stage, or several, match the output type asked for (None: neither a stage nor a type given)."""

    def __init__(self, output_type: str | None, estimate_energy: bool, matches: list[str]) -> None:
        self.output_type, self.estimate_energy, self.matches = output_type, estimate_energy, matches
        if output_type is None:
            detail = "choose a stage: by name, or by output type (TRAINING, DL2, ...)"
        else:
            energy = " with energy estimation" if estimate_energy else ""
            detail = (
                f"output type {output_type}{energy} matches {len(matches)} stage(s) "
                f"({', '.join(matches) or 'none'}); choose the stage by name"
            )
        super().__init__(detail)


class NothingChosenError(UsageError):
    """An action on jobs was given no job to act on (`action`: 'resubmit' or 'kill')."""

    def __init__(self, action: str) -> None:
        self.action = action
        ways = "every failed or killed job" if action == "resubmit" else "a stage, or every job"
        super().__init__(f"no jobs chosen to {action}: name them, or choose {ways}")


class JobNotFoundError(UsageError):
    """Jobs of these names are not in the job store."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        super().__init__(f"unknown job(s): {shown}")


class JobDoneError(UsageError):
    """Jobs asked to be resubmitted are done; running them again needs an explicit request."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        super().__init__(
            f"job(s) already done: {shown}; ask explicitly to run them again (later stages that used "
            "their outputs are then marked stale)"
        )


class RunLockedError(GridpipeError):
    """Another process (`holder`, its process id as it wrote it) is driving the analysis at `path`;
    `by_service`: that process is the background service (`gridpipe service`)."""

    def __init__(self, path: Path, holder: str, *, by_service: bool = False) -> None:
        self.path, self.holder, self.by_service = path, holder, by_service
        who = f"the gridpipe service (process {holder})" if by_service else f"another run (process {holder})"
        super().__init__(
            f"{who} is already driving {path}; wait for it to end, or stop it before starting a new one"
        )


class DownloadFailedError(GridpipeError):
    """Files of a unit (`where`: 'stage/unit') could not be downloaded and verified."""

    def __init__(self, where: str, failures: list[str]) -> None:
        self.where, self.failures = where, failures
        super().__init__(
            f"{where}: {len(failures)} file(s) could not be downloaded and verified, first: {failures[0]}; "
            "gathering the unit again retries them"
        )


class DataTypeNotFoundError(UsageError):
    """No stage writes outputs of this data type (a folder below data/)."""

    def __init__(self, data_type: str, known: list[str]) -> None:
        self.data_type, self.known = data_type, known
        super().__init__(f"no stage writes data type {data_type!r}; known: {', '.join(known)}")


class ParticleNotFoundError(UsageError):
    """None of these particles is a unit of the stages writing this data type."""

    def __init__(self, particles: list[str], data_type: str, known: list[str]) -> None:
        self.particles, self.data_type, self.known = particles, data_type, known
        super().__init__(f"{', '.join(particles)}: not a particle of {data_type}; known: {', '.join(known)}")


class ModelsMissingError(UsageError):
    """A stage needs the uploaded models of `model_stage`, but `folder` in storage holds none."""

    def __init__(self, stage: str, model_stage: str, folder: str) -> None:
        self.stage, self.model_stage, self.folder = stage, model_stage, folder
        super().__init__(
            f"stage '{stage}' needs the models of stage '{model_stage}', but {folder} holds none; "
            f"run stage '{model_stage}' first, or build the models and upload them"
        )


class NoModelFilesError(UsageError):
    """The local output folder of a model stage has no file to upload."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        super().__init__(f"{folder}: no model files to upload; build the models first")


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


class ExecutorFailingError(GridpipeError):
    """The local backend's executor for `local_dir` keeps exiting at once (exit code `executor_exit_code`;
    the command's own is `exit_code`, EXIT_FAILED); starting it again would only loop. `disk_full`: the file
    system holding it has (almost) no space left."""

    def __init__(self, local_dir: Path, executor_exit_code: int, *, disk_full: bool) -> None:
        self.local_dir, self.executor_exit_code, self.disk_full = local_dir, executor_exit_code, disk_full
        cause = f"; the file system holding {local_dir} is full: free some space there" if disk_full else ""
        super().__init__(
            f"the local executor of {local_dir} exits as soon as it starts (exit code {executor_exit_code}){cause}; "
            f"see {local_dir / 'executor.log'}"
        )
