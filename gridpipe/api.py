"""The Python API: `Workflow` and `Stage`, usable from scripts and runnable as command lines.

    from gridpipe import Stage, Workflow

    wf = Workflow.load("~/analyses/my_ana")
    wf.add(Stage(name="scan", needs=["dl2"], units=["gamma"], input_list="{particle}_perf", data_type="SCAN",
                 job_name="{analysis}_SCAN_{particle}_{token}", output="SCAN_{particle}_{token}.h5",
                 command=["my-scan --output {output} {inputs}"]))
    wf.submit("scan", dry_run=True)     # plan only
    wf.run(max_active=50)               # the whole analysis, to the end
    wf.main()                           # or: a command line (`python my_wf.py run --max-active 50`)

`wf.main()` is the `gridpipe` command line on this analysis (its stages as they are in memory), where a
stage name is short for `submit --stage NAME` (`--dry-run`, `--particle`, `--test`, ...). Each call
closes what it opened (job store, backends, storage); so does leaving `with Workflow.load(...) as wf:`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from gridpipe.analysis.layout import WORKFLOW_FILE
from gridpipe.analysis.locate import find_analysis
from gridpipe.analysis.skeleton import WorkflowSpec, load_workflow
from gridpipe.analysis.stage import Stage
from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.service.context import Analysis

__all__ = ["Stage", "Workflow"]


def workflow_text(path: Path, spec: WorkflowSpec) -> str:
    """The new text of a workflow file for `spec`. When the file's stages are unchanged and stages were only
    appended (`add` then `save`), its own text, comments and all, with the new stages appended; otherwise
    `spec` dumped whole under the file's leading comment block."""
    data = spec.model_dump(exclude_defaults=True)
    kept = _appended(path, data)
    if kept is not None:
        return kept
    header = leading_comments(path) or "# written by gridpipe.Workflow.save()\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def _appended(path: Path, data: dict[str, Any]) -> str | None:
    """The file's text with the stages of `data` it lacks appended, or None when that cannot be done
    exactly (other changes, `stages` not the last key, a flow-style list)."""
    try:
        text = path.read_text(encoding="utf-8")
        on_disk = load_workflow(path).model_dump(exclude_defaults=True)
    except (OSError, GridpipeError):
        return None
    old, new = on_disk.get("stages", []), data.get("stages", [])
    same_rest = {k: v for k, v in on_disk.items() if k != "stages"} == {
        k: v for k, v in data.items() if k != "stages"
    }
    if not same_rest or new[: len(old)] != old:
        return None
    if len(new) == len(old):
        return text
    keys = [m.group(1) for m in re.finditer(r"^([A-Za-z_][A-Za-z0-9_]*)[ \t]*:", text, re.MULTILINE)]
    if not keys or keys[-1] != "stages" or re.search(r"^stages[ \t]*:[ \t]*[^\s#]", text, re.MULTILINE):
        return None
    start = [m.start() for m in re.finditer(r"^stages[ \t]*:", text, re.MULTILINE)][-1]
    items = re.findall(r"^( *)- ", text[start:], re.MULTILINE)
    indent = items[0] if items else "  "
    block = yaml.safe_dump(new[len(old) :], sort_keys=False)
    added = "".join(indent + line if line.strip() else line for line in block.splitlines(keepends=True))
    result = text.rstrip("\n") + "\n" + added
    try:
        check = WorkflowSpec.model_validate(yaml.safe_load(result)).model_dump(exclude_defaults=True)
    except (yaml.YAMLError, ValueError):
        return None
    return result if check == data else None


def leading_comments(path: Path) -> str:
    """The comment lines (and blank lines among them) at the top of a YAML file, '' if none or no file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return ""
    block: list[str] = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            block.append(line)
            continue
        break
    while block and not block[-1].strip():
        block.pop()
    return "".join(line if line.endswith("\n") else line + "\n" for line in block)


class Workflow:
    """The stages of one analysis, with the engine behind them."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis

    @classmethod
    def load(cls, path: str | Path | None = None) -> Workflow:
        """The workflow of the analysis at (or containing) `path`."""
        return cls(Analysis.open(find_analysis(Path(path).expanduser() if path else None)))

    @property
    def stages(self) -> list[Stage]:
        """Stages in order."""
        return list(self.analysis.workflow.stages)

    def add(self, stage: Stage) -> Stage:
        """Append a stage (validated with the whole workflow: its needs must exist)."""
        data = self.analysis.workflow.model_dump()
        data["stages"].append(stage.model_dump())
        self.analysis.workflow = WorkflowSpec.model_validate(data)
        return stage

    def save(self) -> Path:
        """Write the stages to configs/workflow.yaml so the `gridpipe` command sees them (the file keeps
        its mode and its leading comment block)."""
        path = self.analysis.path / WORKFLOW_FILE
        atomic_write_text(path, workflow_text(path, self.analysis.workflow))
        return path

    def submit(
        self,
        stage: str,
        *,
        particles: Sequence[str] | None = None,
        dry_run: bool = False,
        limit: int | None = None,
        test: bool = False,
    ) -> Any:
        """Plan and submit one stage's jobs (see `gridpipe submit`); `test`: exactly one job."""
        from gridpipe.service.jobs import select_stage, submit_stage

        with self.analysis as an:
            chosen = select_stage(an, stage, None, False)
            return submit_stage(
                an, chosen, particles, dry_run=dry_run, limit=limit, n_file_per_job=None, test=test
            )

    def run(
        self,
        *,
        max_active: int | None = None,
        max_attempts: int | None = None,
        poll_interval: float | None = None,
    ) -> Any:
        """Drive the analysis to the end (see `gridpipe run`)."""
        from gridpipe.service.orchestrator import Orchestrator, run_options

        with self.analysis as an:
            options = run_options(an, max_active, max_attempts, poll_interval)
            return Orchestrator(an, options, notify=print).run()

    def status(self) -> dict[str, dict[str, dict[str, int]]]:
        """Counts per stage, unit and state (after refreshing active jobs)."""
        from gridpipe.service.refresh import refresh

        with self.analysis as an:
            refresh(an)
            return an.store.counts()

    def stage_main(self, stage: str, argv: Sequence[str] | None = None) -> int:
        """One stage as a command line (`gridpipe submit --stage STAGE`): `--dry-run`, `--particle P`,
        `--test`, ..."""
        return self.main([stage, *(sys.argv[1:] if argv is None else argv)])

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The `gridpipe` command line on this analysis (`run`, `status`, ...); a stage name is short for
        `submit --stage NAME`. Returns the exit code."""
        from gridpipe.cli.app import run_cli

        args = list(sys.argv[1:] if argv is None else argv)
        if args and args[0] in {s.name for s in self.stages}:
            args = ["submit", "--stage", args[0], *args[1:]]
        return run_cli(args, analysis=self.analysis, prog_name=Path(sys.argv[0]).name)

    def close(self) -> None:
        """Close what the analysis has open (job store, backends, storage)."""
        self.analysis.close()

    def __enter__(self) -> Workflow:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
