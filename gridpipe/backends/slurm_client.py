"""Slurm's client commands (sbatch, squeue, sacct, scancel), each run as an argv list with a timeout.

A call that cannot reach slurmctld ("Unable to contact slurm controller", "Socket timed out", ...) is
retried a bounded number of times with a doubling backoff, then raises `SlurmUnreachableError` (a
BackendError, which `gridpipe run` treats as an outage it waits out). Calls that may have changed
something when they timed out (sbatch) are not retried here: the caller reconciles.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gridpipe.core.exceptions import BackendError

UNREACHABLE = (
    "unable to contact slurm controller",
    "socket timed out",
    "connection refused",
    "slurm temporarily unable",
    "zero bytes were transmitted",
    "communication connection failure",
    "slurmctld not responding",
    "unable to establish a connection",
    "slurm_persist_conn_open",
)


class SlurmUnreachableError(BackendError):
    """slurmctld (or slurmdbd) did not answer within the retries."""

    def __init__(self, command: str, problem: str) -> None:
        self.command, self.problem = command, problem
        super().__init__(f"Slurm cannot be reached ({command}): {problem}")


class SlurmCommandError(BackendError):
    """A client command failed for another reason than an unreachable controller."""

    def __init__(self, command: str, problem: str) -> None:
        self.command, self.problem = command, problem
        super().__init__(f"{command} failed: {problem}")


class SlurmTimeoutError(SlurmUnreachableError):
    """The command did not end within its timeout (it may have done its work)."""


@dataclass(frozen=True)
class Answer:
    """What a client command printed."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def problem(self) -> str:
        """The first line of stderr (or stdout) that says what went wrong."""
        text = (self.stderr.strip() or self.stdout.strip() or f"exit code {self.returncode}").splitlines()
        return text[-1] if text else f"exit code {self.returncode}"


def unreachable(text: str) -> bool:
    """Whether a client's error text says that the controller could not be reached."""
    lowered = text.lower()
    return any(marker in lowered for marker in UNREACHABLE)


@dataclass
class SlurmClient:
    """Runs client commands with a timeout, retrying while the controller is unreachable."""

    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    backoff_max: float = 30.0
    calls: int = 0
    """Client commands run so far (the benchmarks count them)."""

    def run_once(self, argv: Sequence[str], stdin: str | None = None, pass_fds: Sequence[int] = ()) -> Answer:
        """One call; SlurmTimeoutError when it does not end in time, BackendError when it cannot start.
        `pass_fds`: descriptors the command inherits (a lock it holds for as long as it runs)."""
        self.calls += 1
        try:
            done = subprocess.run(
                list(argv),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                env={**os.environ, "SLURM_TIME_FORMAT": "standard"},
                pass_fds=tuple(pass_fds),
            )
        except subprocess.TimeoutExpired:
            raise SlurmTimeoutError(argv[0], f"no answer within {self.timeout:g} s") from None
        except FileNotFoundError:
            raise BackendError(
                f"{argv[0]}: command not found (the Slurm client commands must be on PATH)"
            ) from None
        except OSError as exc:
            raise BackendError(f"{argv[0]}: cannot run it: {exc.strerror or exc}") from None
        return Answer(done.returncode, done.stdout, done.stderr)

    def run(self, argv: Sequence[str], *, ok_problems: Sequence[str] = ()) -> Answer:
        """A call retried while the controller is unreachable; a failure that is not listed in
        `ok_problems` (lower-case fragments of stderr) raises SlurmCommandError."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                answer = self.run_once(argv)
            except SlurmTimeoutError:
                if attempt == self.retries:
                    raise
            else:
                if answer.returncode == 0:
                    return answer
                text = answer.stderr + answer.stdout
                if any(p in text.lower() for p in ok_problems):
                    return answer
                if not unreachable(text):
                    raise SlurmCommandError(argv[0], answer.problem)
                if attempt == self.retries:
                    raise SlurmUnreachableError(argv[0], answer.problem)
            time.sleep(delay)
            delay = min(max(delay * 2, 0.1), self.backoff_max)
        raise AssertionError("unreachable")  # pragma: no cover
