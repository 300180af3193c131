"""Why a DIRAC job failed, in its wrapper's and its payload's words, read back from its output sandbox.

DIRAC itself only says "Application Finished With Errors". The job wrapper (templates/dirac/job_wrapper.sh.j2)
ends every failure with one line `[gridpipe TIME] job failed (payload NAME): WHY` on stderr, which DIRAC
returns as std.err in the output sandbox. A failed command's WHY is worded again by its payload here, from
the exit code and the stderr above that line, with the same `Payload.failure_reason` the job worker uses.
"""

from __future__ import annotations

import re

from gridpipe.payloads.contract import installed_payload

APP_ERRORS = "Application Finished With Errors"
"""DIRAC's minor status of a job whose executable (the wrapper) ended with a non-zero exit code."""
STD_ERR = "std.err"
_FAILED = re.compile(r"^\[gridpipe [^\]]*\] job failed(?: \(payload (?P<payload>[^)]*)\))?: (?P<why>.*)$")
_STEP = re.compile(r"^step \d+ \((?P<program>.*)\) exited with code (?P<code>\d+)$")


def needs_sandbox_reason(dirac_status: str, minor_status: str) -> bool:
    """Whether the wrapper ran and failed (only then does its output sandbox tell why)."""
    return dirac_status == "Failed" and minor_status.startswith(APP_ERRORS)


def wrapper_reason(stderr: str) -> str | None:
    """The reason the wrapper gave in the job's stderr (its last "job failed" line), worded by the job's
    payload when a command failed; None when the wrapper said nothing."""
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        found = _FAILED.match(lines[index])
        if found:
            break
    else:
        return None
    why = found.group("why").strip()
    step = _STEP.match(why)
    payload = installed_payload(found.group("payload") or None) if step is not None else None
    if payload is None or step is None:
        return why
    worded = payload.failure_reason(step.group("program"), int(step.group("code")), "\n".join(lines[:index]))
    return worded or why
