"""Starting the local backend's executor: at most one per analysis, handed the executor lock.

Kept apart from the backend and free of the config models, so that a command can start the executor first
thing, while its own modules load and its configs are validated (`gridpipe run` does).
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from gridpipe.core.exceptions import ExecutorFailingError
from gridpipe.core.fsutil import held_lock

EXECUTOR_LOCK = "executor.lock"
"""The file in the local folder whose lock the one executor of an analysis holds."""


def local_dir_of(analysis_path: Path) -> Path:
    """The local backend's folder of the analysis at `analysis_path` (queue, executor lock and log, slots)."""
    return analysis_path / ".gridpipe" / "local"


def ensure_executor(analysis_path: Path) -> None:
    """Start the executor of the analysis at `analysis_path` unless one holds the lock; the lock is handed to
    the new executor. ExecutorFailingError when the last executors this process started kept failing."""
    local_dir = local_dir_of(analysis_path)
    _reap()
    with held_lock(local_dir / EXECUTOR_LOCK, wait=False) as held:
        if held is None:
            return
        _refuse_a_failing_executor(local_dir)
        _start_executor(analysis_path, local_dir, held)


def _start_executor(analysis_path: Path, local_dir: Path, held: int) -> None:
    """Start an executor that takes over the lock `held` through its own copy of the descriptor."""
    lock = _above_standard(os.dup(held))
    try:
        log = _above_standard(
            os.open(local_dir / "executor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        )
        try:
            pid = os.posix_spawn(
                sys.executable,
                [
                    *(sys.executable, "-m", "gridpipe.backends.local_executor"),
                    *(str(analysis_path), str(_LOCK_FD)),
                ],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    (os.POSIX_SPAWN_DUP2, lock, _LOCK_FD),
                ],
                setsid=True,
            )
        finally:
            os.close(log)
    finally:
        os.close(lock)  # the executor holds the lock through its own copy of the descriptor
    _spawned[pid] = local_dir


_LOCK_FD = 3
"""The descriptor through which a new executor receives the executor lock."""


def _above_standard(fd: int) -> int:
    """`fd` moved to a number above 0-3, so that setting up the executor's 0-3 cannot overwrite it."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


_spawned: dict[int, Path] = {}
"""Executors this process started and not yet collected, with their local folder."""
_exits: dict[Path, list[tuple[float, int]]] = {}
"""(time, exit code) of the executors this process started, per local folder, newest last."""
FAILING_STARTS = 3
"""Executors that exited with an error one after the other, each within FAILING_WINDOW_S: stop starting them."""
FAILING_WINDOW_S = 60.0
LOW_SPACE_BYTES = 1 << 20


def _reap() -> None:
    """Collect executors this process started that have exited (no zombies in long runs), noting how."""
    for pid, local_dir in list(_spawned.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            del _spawned[pid]
            exits = _exits.setdefault(local_dir, [])
            exits.append((time.monotonic(), os.waitstatus_to_exitcode(status)))
            del exits[:-FAILING_STARTS]


def _refuse_a_failing_executor(local_dir: Path) -> None:
    """ExecutorFailingError when the last FAILING_STARTS executors of `local_dir` all failed, recently."""
    recent = [code for at, code in _exits.get(local_dir, []) if time.monotonic() - at < FAILING_WINDOW_S]
    if len(recent) < FAILING_STARTS or any(code == 0 for code in recent):
        return
    try:
        space = os.statvfs(local_dir)
        disk_full = space.f_bavail * space.f_frsize < LOW_SPACE_BYTES
    except OSError:
        disk_full = False
    _exits[local_dir] = []  # the next command may try again, after the user has acted
    raise ExecutorFailingError(local_dir, recent[-1], disk_full=disk_full)
