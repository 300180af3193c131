"""Run one command line of a job, without a shell, as its own process group in the work folder."""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Callable
from pathlib import PurePosixPath

from gridpipe.worker.result import JobResult, failed, killed
from gridpipe.worker.workspace import Workspace


def execute(
    argv: tuple[str, ...],
    workspace: Workspace,
    env: dict[str, str],
    cancel: threading.Event,
    on_start: Callable[[int], None],
) -> JobResult | None:
    """Run `argv` with stdout and stderr appended to the workspace's logs; None when it succeeded.

    `on_start` gets the process id (also its process group) as soon as it runs, so that whoever sets
    `cancel` can signal the group; a command that ends after `cancel` was set counts as killed.
    """
    os.write(workspace.logs["stdout"], f"$ {shlex.join(argv)}\n".encode())
    program = workspace.program(argv[0], env)
    if program is None:
        return failed(f"command not found: {argv[0]!r}")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, workspace.logs["stdout"], 1),
        (os.POSIX_SPAWN_DUP2, workspace.logs["stderr"], 2),
    ]
    # posix_spawn (much cheaper than fork from a large process) has no working-directory argument; the
    # process runs one job at a time, so changing its own directory for the spawn is safe.
    os.chdir(workspace.work)
    try:
        pid = os.posix_spawn(program, list(argv), env, file_actions=actions, setsid=True)
    except OSError as exc:
        return failed(f"cannot start {argv[0]!r}: {exc.strerror}")
    finally:
        os.chdir("/")
    on_start(pid)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if cancel.is_set():
        return killed()
    if code == 0:
        return None
    name = PurePosixPath(argv[0]).name
    if code < 0:
        return failed(f"{name} was killed by signal {-code}", code)
    return failed(f"{name} exited with code {code}", code)
