"""What a DIRAC job executes: one fixed wrapper script, and the job's steps as base64 shell text.

The wrapper (templates/dirac/job_wrapper.sh.j2) is the same for every job, so one input sandbox serves
a whole submission. The job's own part, its steps, is shell text in which every word is quoted with
`shlex.quote`; it travels base64-encoded in the JDL's `Arguments`, because DIRAC's JDL has no escapes
(see dirac_jdl) and DIRAC passes `Executable Arguments` through a shell on the worker node. The base64
alphabet (A-Z a-z 0-9 + / =) means nothing to either.
"""

from __future__ import annotations

import base64
import shlex
from functools import cache
from pathlib import PurePosixPath

from gridpipe.analysis.naming import is_env_name
from gridpipe.core.exceptions import UsageError
from gridpipe.core.models import JobSpec
from gridpipe.payloads.contract import installed_payload

WRAPPER_NAME = "gridpipe_job.sh"
"""Name of the wrapper in the input sandbox (the JDL's Executable)."""
WRAPPER_TEMPLATE = "dirac/job_wrapper.sh.j2"
MAX_ARGUMENTS = 100_000
"""Longest encoded steps accepted (Linux limits one argument to 128 KiB)."""


def _word(text: str) -> str:
    return shlex.quote(text)


def job_steps(spec: JobSpec) -> str:
    """The job's steps as shell text for the wrapper: its payload, env, inputs to expect, commands, outputs
    to expect and the payload's checks of them."""
    lines = [f"# steps of gridpipe job {spec.name!r}" if spec.name.isprintable() else "# gridpipe job steps"]
    payload = installed_payload(spec.payload)
    if payload is not None:
        lines.append(f"payload {_word(payload.name)}")
    for name, value in sorted(spec.env.items()):
        if not is_env_name(name):
            raise UsageError(f"job {spec.name}: environment variable name {name!r} is not a shell identifier")
        lines.append(f"export {name}={_word(value)}")
    lines += [f"require_input {_word(PurePosixPath(lfn).name)}" for lfn in spec.inputs]
    for number, argv in enumerate(spec.commands, 1):
        if not argv:
            raise UsageError(f"job {spec.name}: command {number} is empty")
        lines.append(f"step {number} " + " ".join(_word(arg) for arg in argv))
    names = [PurePosixPath(lfn).name for lfn in spec.outputs]
    lines += [f"require_output {_word(name)}" for name in names]
    for name in names:
        check = payload.output_check(name) if payload is not None else None
        if check is not None:
            lines.append(f"check_output {_word(name)} " + " ".join(_word(arg) for arg in check.command(name)))
    return "\n".join(lines) + "\n"


def encode_steps(spec: JobSpec) -> str:
    """The job's steps, base64-encoded for the JDL's Arguments."""
    encoded = base64.b64encode(job_steps(spec).encode("utf-8")).decode("ascii")
    if len(encoded) > MAX_ARGUMENTS:
        raise UsageError(
            f"job {spec.name}: its commands take {len(encoded)} characters encoded, over {MAX_ARGUMENTS}; "
            "use fewer input files per job (jobs.n_file_per_job in configs/grid.yaml)"
        )
    return encoded


def decode_steps(arguments: str) -> str:
    """Inverse of `encode_steps` (what the wrapper does with `base64 -d`)."""
    return base64.b64decode(arguments.encode("ascii"), validate=True).decode("utf-8")


@cache
def render_wrapper() -> str:
    """The wrapper script's text (identical for every job of this gridpipe version; rendered once)."""
    from gridpipe.analysis.render import environment, render
    from gridpipe.core.version import __version__

    return render(environment(), WRAPPER_TEMPLATE, {"version": __version__})
