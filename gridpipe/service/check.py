"""`gridpipe check`: everything that would go wrong, found before anything is submitted.

The configs, the workflow and the lists are read as `analysis.check` does; then every stage is planned
on paper as `submit` and `run` would plan it, so names, placeholders, command lines and inputs that the
engine would refuse are reported here first.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from gridpipe.analysis.check import Finding, check_analysis
from gridpipe.analysis.layout import WORKFLOW_FILE
from gridpipe.analysis.lists import scan_list
from gridpipe.core.exceptions import ConfigError, GridpipeError
from gridpipe.service.context import Analysis
from gridpipe.workflow.validate import plan_problems


def check(path: Path) -> list[Finding]:
    """Every problem of the analysis at `path`, errors first."""
    findings = check_analysis(path)
    if any(f.level == "error" for f in findings):
        return findings  # planning needs sound configs and lists; fix those first
    try:
        with Analysis.open(path) as an:
            lists: dict[str, list[str] | None] = {}
            for key, rel in an.grid.inputs.items():
                try:
                    lfns, errors, _ = scan_list(path / rel)
                except ConfigError:
                    lfns, errors = [], [None]
                lists[key] = None if errors else lfns
            problems = plan_problems(an.workflow.stages, an.plan_context(), lists)
            findings += stage_backend_findings(an)
            findings += storage_findings(an, {k: v for k, v in lists.items() if v})
    except GridpipeError as exc:
        return [*findings, Finding("error", str(path), exc.detail)]
    file = str(path / WORKFLOW_FILE)
    return [Finding("error", file, message) for _, message in problems] + findings


def stage_backend_findings(an: Analysis) -> list[Finding]:
    """Stages that name a backend their jobs cannot run on (from what the plugins declare)."""
    from gridpipe.backends.registry import backend_class
    from gridpipe.core.plugins import Group, load

    found: list[Finding] = []
    file = str(an.path / WORKFLOW_FILE)
    storage = load(Group.storages, an.grid.storage.name)
    for stage in an.workflow.stages:
        if stage.backend is None:
            continue
        shares = backend_class(stage.backend).shares_file_system
        if stage.kind == "local" and not shares:
            found.append(
                Finding(
                    "error",
                    file,
                    f"stage '{stage.name}': key 'backend': a local stage reads and writes this machine's "
                    f"files, which backend {stage.backend!r} does not share; name a backend that shares "
                    "them (local, slurm) or none",
                )
            )
        elif not shares and not getattr(storage, "reachable_from_grid", True):
            found.append(
                Finding(
                    "error",
                    file,
                    f"stage '{stage.name}': key 'backend': backend {stage.backend!r} runs jobs on other "
                    f"machines, which cannot reach storage {an.grid.storage.name!r} (a folder on this one)",
                )
            )
    return found


def storage_findings(an: Analysis, lists: dict[str, list[str]]) -> list[Finding]:
    """Listed inputs the storage does not know (one bulk question), and a storage folder that batch
    nodes would not find."""
    from gridpipe.service.storage_files import unknown_inputs

    found: list[Finding] = []
    grid_yaml = str(an.path / "configs" / "grid.yaml")
    root = getattr(an.grid.storage.settings, "root", None)
    if (
        an.grid.backend.name != "local"
        and an.grid.storage.name == "local"
        and root
        and not Path(root).is_absolute()
    ):
        found.append(
            Finding(
                "warning",
                grid_yaml,
                f"key 'storage.local.root': {root!r} is relative; jobs of the {an.grid.backend.name} backend "
                "find it from the analysis folder, so that folder must be on a file system the nodes share "
                "(an absolute path on such a file system is safer)",
            )
        )
    try:
        unknown = unknown_inputs(an.storage, lists)
    except GridpipeError as exc:
        return [
            *found,
            Finding("warning", grid_yaml, f"could not ask the storage about the inputs: {exc.detail}"),
        ]
    for key, lfns in unknown.items():
        if lfns:
            found.append(unknown_inputs_finding(an.path / an.grid.inputs[key], lfns, len(lists[key]), an))
    return found


SHOWN_UNKNOWN = 3
"""Unknown inputs named in check's message (the count says how many more)."""


def unknown_inputs_finding(file: Path, lfns: list[str], total: int, an: Analysis) -> Finding:
    """An error: every job reading one of `lfns` would fail at stage-in on every attempt. It names the
    first few with their lines and the command that adds them (to their common LFN folder when they share one)."""
    lines = _line_numbers(file, lfns[:SHOWN_UNKNOWN])
    shown = ", ".join(f"{lfn} (line {lines[lfn]})" if lfn in lines else lfn for lfn in lfns[:SHOWN_UNKNOWN])
    more = f" and {len(lfns) - SHOWN_UNKNOWN} more" if len(lfns) > SHOWN_UNKNOWN else ""
    folders = {posixpath.dirname(lfn) for lfn in lfns}
    folder = folders.pop() if len(folders) == 1 else "LFN_FOLDER"
    return Finding(
        "error",
        str(file),
        f"{len(lfns)} of {total} input(s) are not in the {an.grid.storage.name} storage: {shown}{more}; "
        "the jobs reading them would fail on every attempt. Add them with "
        f"`gridpipe storage add FILES --to {folder}` (--in-place to register them where they are), "
        "or remove them from the list",
        line=lines.get(lfns[0]),
    )


def _line_numbers(file: Path, lfns: list[str]) -> dict[str, int]:
    """The line of each LFN in a list file (comments and blank lines count)."""
    wanted = set(lfns)
    numbers: dict[str, int] = {}
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return numbers
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line in wanted and line not in numbers:
            numbers[line] = number
    return numbers
