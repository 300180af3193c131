"""The Python API: `Workflow` and `Stage`, usable from scripts and runnable as command lines.

    from gridpipe import Stage, Workflow

    wf = Workflow.load("~/analyses/my_ana")
    wf.add(Stage(name="scan", needs=["dl2"], units=["gamma"], input_list="{particle}_perf", data_type="SCAN",
                 job_name="{analysis}_SCAN_{particle}_{token}", output="SCAN_{particle}_{token}.h5",
                 command=["my-scan --output {output} {inputs}"]))
    wf.submit("scan", dry_run=True)     # plan only
    wf.run(max_active=50)               # the whole analysis, to the end
    wf.main()                           # or: a command line (`python my_wf.py run --max-active 50`)

A single stage is also a command line: `wf.stage_main("scan")` takes `--dry-run`, `--particle`, `--test`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from gridpipe.analysis.layout import WORKFLOW_FILE
from gridpipe.analysis.locate import find_analysis
from gridpipe.analysis.skeleton import WorkflowSpec
from gridpipe.core.exceptions import GridpipeError
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.service.context import Analysis
from gridpipe.workflow.stage import Stage

__all__ = ["Stage", "Workflow"]


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
        """Write the stages to configs/workflow.yaml so the `gridpipe` command sees them."""
        path = self.analysis.path / WORKFLOW_FILE
        data = self.analysis.workflow.model_dump(exclude_defaults=True)
        atomic_write_text(
            path, "# written by gridpipe.Workflow.save()\n" + yaml.safe_dump(data, sort_keys=False)
        )
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
        from gridpipe.service.jobs import submit_stage

        return submit_stage(
            self.analysis,
            self.analysis.workflow.stage(stage),
            particles,
            dry_run=dry_run,
            limit=limit,
            n_file_per_job=None,
            test=test,
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

        options = run_options(self.analysis, max_active, max_attempts, poll_interval)
        return Orchestrator(self.analysis, options, notify=print).run()

    def status(self) -> dict[str, dict[str, dict[str, int]]]:
        """Counts per stage, unit and state (after refreshing active jobs)."""
        from gridpipe.service.refresh import refresh

        refresh(self.analysis)
        return self.analysis.store.counts()

    def stage_main(self, stage: str, argv: Sequence[str] | None = None) -> int:
        """Run one stage as a command line: `--dry-run`, `--particle P`, `--test`."""
        parser = argparse.ArgumentParser(prog=f"{Path(sys.argv[0]).name} {stage}")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, submit nothing")
        parser.add_argument("--particle", action="append", help="only this particle (repeatable)")
        parser.add_argument("--test", action="store_true", help="submit exactly one job")
        args = parser.parse_args(argv)
        return _guard(
            lambda: _print_outcome(
                self.submit(stage, particles=args.particle, dry_run=args.dry_run, test=args.test)
            )
        )

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The workflow as a command line: `run`, `status`, or a stage name (then that stage's options)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        commands = ["run", "status", *(s.name for s in self.stages)]
        if not argv or argv[0] not in commands:
            print(f"usage: {Path(sys.argv[0]).name} {{{','.join(commands)}}} [options]", file=sys.stderr)
            return 2
        if argv[0] == "run":
            return _guard(lambda: 0 if self.run().complete else 1)
        if argv[0] == "status":
            return _guard(lambda: print(yaml.safe_dump(self.status(), sort_keys=False)) or 0)
        return self.stage_main(argv[0], argv[1:])


def _print_outcome(outcome: Any) -> int:
    for spec in outcome.to_submit:
        print(spec.name, *(" ".join(argv) for argv in spec.commands), sep="\n  ")
    return 0


def _guard(action: Any) -> int:
    try:
        return int(action())
    except GridpipeError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return exc.exit_code
