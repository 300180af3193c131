"""Names gridpipe derives: analysis names, run tokens, job names and LFNs (protopipe conventions)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from gridpipe.core.exceptions import UsageError

DIRAC_JOBNAME_MAX = 128
"""DIRAC's JobName column is VARCHAR(128)."""

RUN_DIGITS_MAX = 9
"""Run numbers longer than this are refused, so that names stay within DIRAC's limits."""

# Longest suffix gridpipe appends to an analysis name for the built-in stages:
# "_TRAINING_classification_electron_" + "run<9 digits>-run<9 digits>".
_LONGEST_SUFFIX = len("_TRAINING_classification_electron_") + 2 * (3 + RUN_DIGITS_MAX) + 1
ANALYSIS_NAME_MAX = DIRAC_JOBNAME_MAX - _LONGEST_SUFFIX
"""So that every job name derived from an analysis name fits DIRAC's JobName."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SAFE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=@-]*")
JDL_FORBIDDEN = frozenset('";,[]{}%')
"""Characters DIRAC's JDL cannot carry in a string (it has no escapes)."""
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RUN_RE = re.compile(r"run(\d+)", re.IGNORECASE)
_LFN_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


def analysis_name_problem(name: str) -> str | None:
    """Why `name` is not a valid analysis name, or None if it is."""
    if not name:
        return "the analysis name is empty"
    if len(name) > ANALYSIS_NAME_MAX:
        return (
            f"the analysis name is {len(name)} characters; at most {ANALYSIS_NAME_MAX} are allowed so that "
            f"every job name fits DIRAC's {DIRAC_JOBNAME_MAX}-character JobName"
        )
    if not _NAME_RE.fullmatch(name):
        return (
            f"the analysis name {name!r} may only contain letters, digits, '.', '_' and '-', "
            "and must start with a letter or digit"
        )
    return None


def validate_analysis_name(name: str) -> str:
    """Return `name` or raise UsageError with the reason."""
    problem = analysis_name_problem(name)
    if problem:
        raise UsageError(problem)
    return name


def run_number(lfn: str) -> int | None:
    """The run number in a simulation file name (`..._run1234___...simtel.zst`), if any."""
    found = _RUN_RE.findall(lfn.rsplit("/", 1)[-1])
    return int(found[-1]) if found else None


def run_token(first: int, last: int) -> str:
    """Protopipe's token for a batch of runs: `runNNN` for one, `runA-runB` for several."""
    for number in (first, last):
        if number < 0 or len(str(number)) > RUN_DIGITS_MAX:
            raise UsageError(f"run number {number} has more than {RUN_DIGITS_MAX} digits")
    return f"run{first}" if first == last else f"run{first}-run{last}"


def lfn_problem(lfn: str) -> str | None:
    """Why `lfn` is not a valid logical file name, or None if it is."""
    if not lfn.startswith("/"):
        return "an LFN must be absolute (start with '/')"
    if _LFN_BAD.search(lfn):
        return "an LFN may not contain spaces or control characters"
    parts = lfn.split("/")
    if ".." in parts or "." in parts:
        return "an LFN may not contain '.' or '..' components"
    if "//" in lfn:
        return "an LFN may not contain empty components ('//')"
    bad = sorted(set(lfn) & JDL_FORBIDDEN)
    if bad:
        return f"an LFN may not contain {' '.join(bad)} (DIRAC's job description cannot carry them)"
    return None


def is_env_name(name: str) -> bool:
    """An environment variable name a shell accepts (letters, digits, '_'; not starting with a digit)."""
    return bool(_ENV_NAME_RE.fullmatch(name))


def is_safe_name(name: str) -> bool:
    """Letters, digits and . _ + = @ -, starting with a letter or digit: nothing a shell, a batch system's
    description or a ClassAd string would read."""
    return bool(_SAFE_NAME_RE.fullmatch(name))


def job_name_problem(name: str) -> str | None:
    """Why `name` cannot be a job name (it names folders, logs and DIRAC jobs), or None if it can."""
    if len(name) > DIRAC_JOBNAME_MAX:
        return f"is {len(name)} characters, over DIRAC's {DIRAC_JOBNAME_MAX}"
    if not _SAFE_NAME_RE.fullmatch(name):
        return "may only hold letters, digits and . _ + = @ -, and must start with a letter or digit"
    return None


def file_name_problem(name: str) -> str | None:
    """Why `name` cannot be one file's name inside a folder gridpipe writes, or None if it can."""
    if not _SAFE_NAME_RE.fullmatch(name):
        return (
            "must be one file name (no '/' or '..') of letters, digits and . _ + = @ -, "
            "starting with a letter or digit"
        )
    if len(name) > 255:
        return f"is {len(name)} characters, over the file system's 255"
    return None


def value_name_problem(value: str) -> str | None:
    """Why a value cannot become part of unit, job and file names (a sweep value), or None."""
    if not re.fullmatch(r"[A-Za-z0-9.+-][A-Za-z0-9._+=@-]*", value) or set(value) <= {"."}:
        return "may only hold letters, digits and . _ + = @ - (it becomes part of job and file names)"
    return None


def relative_path_problem(path: str) -> str | None:
    """Why `path` is not a safe relative path inside a tree, or None if it is."""
    if not path or path.startswith("/") or "\\" in path:
        return "must be a relative path with '/' separators"
    parts = PurePosixPath(path).parts
    if any(part in ("..", ".") for part in parts) or _LFN_BAD.search(path):
        return "may not contain '.', '..', spaces or control characters"
    return None


def join_lfn(*parts: str) -> str:
    """Join LFN components, dropping empty ones and duplicate slashes."""
    pieces = [p.strip("/") for p in parts if p and p.strip("/")]
    return "/" + "/".join(pieces)
