"""`gridpipe check`: everything that would go wrong, found before anything is submitted.

The configs, the workflow and the lists are read as `analysis.check` does; then every stage is planned
on paper as `submit` and `run` would plan it, so names, placeholders, command lines and inputs that the
engine would refuse are reported here first.
"""

from __future__ import annotations

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
    except GridpipeError as exc:
        return [*findings, Finding("error", str(path), exc.detail)]
    file = str(path / WORKFLOW_FILE)
    return [Finding("error", file, message) for _, message in problems] + findings
