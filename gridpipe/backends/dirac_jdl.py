"""The JDL of one gridpipe job, from a small writer that refuses what DIRAC's JDL cannot carry.

DIRAC's JDL has no escape syntax. Checked against a real diracx 0.7.0 server (DIRACCommon's
`loadJDLAsCFG` and `ClassAdLight` parse every submitted JDL), a string value behaves like this:
a backslash is an ordinary character (so "escaping" it doubles it); a double quote cannot appear at
all (`\\"` ends the string: the job loses its name and group, or the JDL is a 400 "JDL syntax
error"); `;` cuts the value (and may lose what follows); `,` turns it into a list; `[` inside a
value hangs the server's parser; `%j` becomes the job id; list items lose their spaces; newlines
are dropped. Everything else (spaces, ', $, `, &, |, backslashes, unicode, ...) arrives intact.
So plain values are checked and refused with a clear message, and the one free-form value, the
job's commands, travels base64-encoded in `Arguments` (see dirac_script).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from gridpipe.analysis.naming import JDL_FORBIDDEN
from gridpipe.backends.dirac_script import WRAPPER_NAME, encode_steps
from gridpipe.core.exceptions import UsageError
from gridpipe.core.models import JobSpec

JOB_GROUP_MAX = 32
"""DIRAC's JobGroup column is VARCHAR(32)."""
JOB_NAME_MAX = 128
"""DIRAC's JobName column is VARCHAR(128)."""
STD_OUT, STD_ERR = "std.out", "std.err"
_FORBIDDEN = JDL_FORBIDDEN


@dataclass(frozen=True)
class JdlSettings:
    """Analysis-wide JDL values (from configs/grid.yaml)."""

    job_group: str
    grid_home: str = ""
    output_se: str = ""
    cpu_time: int = 86400
    priority: int | None = None
    tags: tuple[str, ...] = ()
    banned_sites: tuple[str, ...] = ()


def jdl_problem(value: str, *, list_item: bool = False) -> str | None:
    """Why `value` cannot be a JDL string (or list item), or None when it can."""
    if not value:
        return "it is empty"
    bad = sorted({c for c in value if c in _FORBIDDEN or not c.isprintable() or (list_item and c == " ")})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"it contains {shown}, which DIRAC's JDL cannot carry (the JDL has no escapes)"
    return None


def jdl_string(key: str, value: str) -> str:
    """`value` as a JDL string literal; UsageError naming the key when DIRAC would mangle it."""
    problem = jdl_problem(value)
    if problem:
        raise UsageError(f"JDL {key} {value!r}: {problem}")
    return f'"{value}"'


def jdl_list(key: str, values: Sequence[str]) -> str:
    """`values` as a JDL list of strings; UsageError naming the key when DIRAC would mangle one."""
    for value in values:
        problem = jdl_problem(value, list_item=True)
        if problem:
            raise UsageError(f"JDL {key} item {value!r}: {problem}")
    return "{" + ", ".join(f'"{v}"' for v in values) + "}"


def derive_job_group(analysis_name: str, grid_dir: str) -> str:
    """Readable, deterministic JobGroup of an analysis: name prefix + hash of its grid folder (<= 32)."""
    digest = hashlib.sha256(grid_dir.encode("utf-8")).hexdigest()[:8]
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", analysis_name)[: JOB_GROUP_MAX - len(digest) - 1]
    return f"{prefix}-{digest}"


def output_path(outputs: Sequence[str], grid_home: str) -> str | None:
    """OutputPath of a job: its output folder relative to the grid home (None when not below it)."""
    folders = {posixpath.dirname(lfn) for lfn in outputs}
    home = grid_home.rstrip("/")
    if len(folders) != 1 or not home:
        return None
    folder = folders.pop()
    return folder[len(home) + 1 :] if folder.startswith(home + "/") else None


def sandbox_names(spec: JobSpec) -> list[str]:
    """Base names of the files a job's input sandbox holds (the wrapper first)."""
    return [WRAPPER_NAME, *(PurePosixPath(p).name for p in spec.sandbox)]


def render_jdl(spec: JobSpec, settings: JdlSettings, input_sandbox: Sequence[str] | None = None) -> str:
    """The job's JDL; `input_sandbox` holds uploaded sandbox PFNs (None, as in a dry run: the file names)."""
    if spec.where != "grid":
        raise UsageError(f"job {spec.name} runs locally ({spec.stage}); it cannot go to DIRAC")
    if len(spec.name) > JOB_NAME_MAX:
        raise UsageError(f"JDL JobName {spec.name!r}: longer than DIRAC's {JOB_NAME_MAX} characters")
    fields = [
        ("JobName", jdl_string("JobName", spec.name)),
        ("JobGroup", jdl_string("JobGroup", settings.job_group)),
        ("Executable", jdl_string("Executable", WRAPPER_NAME)),
        ("Arguments", jdl_string("Arguments", encode_steps(spec))),
        ("InputSandbox", jdl_list("InputSandbox", list(input_sandbox or sandbox_names(spec)))),
        ("StdOutput", jdl_string("StdOutput", STD_OUT)),
        ("StdError", jdl_string("StdError", STD_ERR)),
        ("OutputSandbox", jdl_list("OutputSandbox", [STD_OUT, STD_ERR])),
        ("CPUTime", str(int(settings.cpu_time))),
    ]
    if spec.inputs:
        fields.append(("InputData", jdl_list("InputData", [f"LFN:{lfn}" for lfn in spec.inputs])))
    if spec.outputs:
        fields.append(("OutputData", jdl_list("OutputData", [f"LFN:{lfn}" for lfn in spec.outputs])))
        path = output_path(spec.outputs, settings.grid_home)
        if path:
            fields.append(("OutputPath", jdl_string("OutputPath", path)))
        if settings.output_se:
            fields.append(("OutputSE", jdl_string("OutputSE", settings.output_se)))
    if settings.banned_sites:
        fields.append(("BannedSites", jdl_list("BannedSites", settings.banned_sites)))
    if settings.priority is not None:
        fields.append(("Priority", str(int(settings.priority))))
    if settings.tags:
        fields.append(("Tags", jdl_list("Tags", settings.tags)))
    return "[\n" + "".join(f"    {key} = {value};\n" for key, value in fields) + "]"
