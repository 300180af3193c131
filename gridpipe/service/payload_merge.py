"""Merge a unit's job outputs with the payload's own merger (e.g. ctapipe-merge) instead of gridpipe's.

The command writes a temporary file beside the merged one, which takes the merged file's name only when
the command succeeded and the result opens: the merged file appears whole or not at all.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import tables

from gridpipe.core.exceptions import GridpipeError
from gridpipe.payloads.contract import Payload

MERGE_TIMEOUT_SECONDS = 6 * 3600
ERROR_TAIL_CHARACTERS = 2000


class PayloadMergeError(GridpipeError):
    """The payload's merge command failed: which merged file, and why (the payload's words)."""

    def __init__(self, output: Path, reason: str) -> None:
        self.output, self.reason = output, reason
        super().__init__(f"{output}: not merged: {reason}")


def table_rows(path: Path) -> dict[str, int]:
    """Rows of every table in an HDF5 file, by node path."""
    with tables.open_file(path, mode="r") as h5:
        return {node._v_pathname: int(node.nrows) for node in h5.walk_nodes("/", classname="Table")}


def _reason(payload: Payload, program: str, exit_code: int, stderr: str) -> str:
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return (
        payload.failure_reason(program, exit_code, stderr)
        or f"{program} exited with code {exit_code}: {tail}"
    )


def run_payload_merge(
    payload: Payload, argv: Sequence[str], temp: Path, output: Path, numba_cache: Path
) -> dict[str, int]:
    """Run the payload's merge command `argv` (which writes `temp`, beside `output`) and give its result
    `output`'s name; returns the merged file's rows per table. `numba_cache`: the jobs' cache of compiled
    code (a fresh one would cost ctapipe some 20 s of compiling per merge)."""
    program = Path(argv[0]).name
    env = {"NUMBA_CACHE_DIR": str(numba_cache), **os.environ}
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=MERGE_TIMEOUT_SECONDS,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        temp.unlink(missing_ok=True)
        raise PayloadMergeError(output, f"{program} did not end within {MERGE_TIMEOUT_SECONDS} s") from None
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise PayloadMergeError(output, f"cannot start {program}: {exc.strerror}") from None
    if done.returncode != 0:
        temp.unlink(missing_ok=True)
        raise PayloadMergeError(output, _reason(payload, program, done.returncode, done.stderr))
    rows = table_rows(temp)
    os.replace(temp, output)
    return rows
