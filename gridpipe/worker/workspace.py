"""A job's work folder and the two log files its commands write to, reusable job after job.

The local backend's runners keep one per slot and reuse it (a job's own file-system work stays down to
its payload's files); the `python -m gridpipe.worker` entry point makes one for its single job.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LOG_STREAMS = ("stdout", "stderr")
NUMBA_CACHE = "numba-cache"
"""numba's (ctapipe's) cache of compiled code, beside the work folders unless NUMBA_CACHE_DIR is set: a
writable place (numba's default is beside the installed modules) shared by job after job."""


class Workspace:
    """`work`, where the payload runs, and the log files its stdout and stderr are appended to."""

    def __init__(self, work: Path, logs: dict[str, Path]) -> None:
        self.work = work
        self.log_paths = logs
        work.mkdir(parents=True, exist_ok=True)
        self.logs = {stream: self._open_log(stream) for stream in LOG_STREAMS}
        self._programs: dict[tuple[str, str], str | None] = {}

    def _open_log(self, stream: str) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        return os.open(self.log_paths[stream], flags, 0o644)

    def close(self) -> None:
        """Close the log files."""
        for fd in self.logs.values():
            os.close(fd)

    def reset_logs(self) -> None:
        """Empty both log files for the next job."""
        for fd in self.logs.values():
            os.ftruncate(fd, 0)

    def log_size(self, stream: str) -> int:
        """Bytes in the log file `stream`."""
        return os.fstat(self.logs[stream]).st_size

    def log_text(self, stream: str, size: int | None = None) -> str:
        """The text of the log file `stream` (its first `size` bytes when the caller knows its size)."""
        fd = self.logs[stream]
        return os.pread(fd, os.fstat(fd).st_size if size is None else size, 0).decode(errors="replace")

    def log_since(self, stream: str, start: int) -> str:
        """The text the log file `stream` gained after its first `start` bytes."""
        fd = self.logs[stream]
        return os.pread(fd, max(os.fstat(fd).st_size - start, 0), start).decode(errors="replace")

    def move_log(self, stream: str, dest: Path) -> None:
        """Move the log file `stream` to `dest`; a fresh empty one takes its place."""
        os.replace(self.log_paths[stream], dest)
        os.close(self.logs[stream])
        self.logs[stream] = self._open_log(stream)

    def empty(self) -> None:
        """Remove everything inside the work folder (usually a few files: a scandir and an unlink each)."""
        with os.scandir(self.work) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)

    def keep(self, dest: Path) -> None:
        """Move the work folder to `dest` (kept for inspection); an empty one takes its place."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.work, dest)
        self.work.mkdir()

    def program(self, argv0: str, env: dict[str, str]) -> str | None:
        """The executable `argv0` names: relative to the work folder, absolute, or found on PATH (cached)."""
        if "/" in argv0:
            return argv0 if argv0.startswith("/") else str(self.work / argv0)
        key = (argv0, env.get("PATH", os.defpath))
        if key not in self._programs:
            self._programs[key] = shutil.which(argv0, path=key[1])
        return self._programs[key]
