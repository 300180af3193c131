"""Tables and JSON for job commands (printing only; the data comes from the service layer)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from gridpipe.cli.output import command_line, console, print_json
from gridpipe.core.states import SHOWN_STATES

if TYPE_CHECKING:
    from gridpipe.backends.contract import Backend
    from gridpipe.service.context import Analysis
    from gridpipe.service.jobs import ResubmitReport, SubmitOutcome
    from gridpipe.service.status import JobFilter


def print_plan(outcome: SubmitOutcome, json_output: bool, backend: Backend | None = None) -> None:
    """The dry-run plan: names, inputs, command lines, outputs (and what the backend would get, e.g. JDL)."""
    described = {spec.name: backend.describe(spec) if backend else None for spec in outcome.to_submit}
    if json_output:
        jobs = [
            {
                **spec.to_json(),
                **({"backend_description": described[spec.name]} if described[spec.name] else {}),
            }
            for spec in outcome.to_submit
        ]
        print_json(
            {
                "stage": outcome.stage,
                "dry_run": True,
                "skipped_existing_outputs": outcome.skipped_existing,
                "already_planned": [n for n in outcome.already_planned if n in described],
                "jobs": jobs,
            }
        )
        return
    out = console()
    bold = ("\x1b[1m", "\x1b[0m") if out.is_terminal and not out.no_color else ("", "")
    lines: list[str] = []
    earlier = set(outcome.already_planned)
    for spec in outcome.to_submit:  # plain writes, verbatim: rich's per-line print costs ~0.1 ms a line
        lines.append(
            f"{bold[0]}{spec.name}{bold[1]}  ({spec.stage}/{spec.unit}, {len(spec.inputs)} input(s)"
            + (", planned earlier)" if spec.name in earlier else ")")
        )
        lines += [f"  in   {lfn}" for lfn in spec.inputs]
        lines += [f"  run  {command_line(*argv)}" for argv in spec.commands]
        lines += [f"  out  {lfn}" for lfn in spec.outputs]
        lines += [f"  jdl  {line}" for line in (described[spec.name] or "").splitlines()]
        if len(lines) > 10_000:
            out.file.write("\n".join(lines) + "\n")
            lines.clear()
    if lines:
        out.file.write("\n".join(lines) + "\n")
    out.file.flush()
    out.print(
        f"dry run: {len(outcome.to_submit)} job(s) would be submitted to stage {outcome.stage}"
        + (f" ({n_earlier} planned earlier)" if (n_earlier := len(earlier & set(described))) else "")
        + (f", {len(outcome.skipped_existing)} skipped (outputs exist)" if outcome.skipped_existing else "")
        + "; nothing was submitted"
    )


def print_submit(outcome: SubmitOutcome, json_output: bool) -> None:
    """What a submission did."""
    report = outcome.report
    assert report is not None
    if json_output:
        print_json(
            {
                "stage": outcome.stage,
                "submitted": report.submitted,
                "adopted": report.adopted,
                "failed": report.failed,
                "skipped_existing_outputs": outcome.skipped_existing,
            }
        )
        return
    console().print(
        f"{outcome.stage}: submitted {len(report.submitted)} job(s)"
        + (f", adopted {len(report.adopted)} found on the backend" if report.adopted else "")
        + (f", {len(outcome.skipped_existing)} skipped (outputs exist)" if outcome.skipped_existing else "")
    )


def print_resubmit(report: ResubmitReport, json_output: bool) -> None:
    """What `resubmit` did, and the units it made stale."""
    stale: dict[str, list[str]] = {}
    for stage, unit in report.stale:
        stale.setdefault(stage, []).append(unit)
    sub = report.submission
    if json_output:
        print_json({"submitted": sub.submitted, "adopted": sub.adopted, "failed": sub.failed, "stale": stale})
        return
    out = console()
    out.print(
        f"resubmitted {len(sub.submitted)} job(s)" + (f", {len(sub.failed)} failed" if sub.failed else "")
    )
    for stage, units in stale.items():
        out.print(f"stale: {stage} ({', '.join(units)}): `gridpipe run` redoes it")


TABLE_ROWS_MAX = 1000
"""More job rows than this are streamed as tab-separated lines (a rich table holds every row in memory)."""

UNIT_ROWS_MAX = 20
"""A stage with more units than this (a parameter sweep) is one row of `status` unless --units is given."""

DEFAULT_JOB_ROWS = 50
"""Rows `status --jobs` shows unless told (`--limit N`, `--all`)."""


def write_status_json(an: Analysis, which: JobFilter | None = None) -> None:
    """The documented JSON form of `status`, written as the store is read: one job per line, memory flat."""
    from gridpipe.service.status import JobFilter, job_rows, stage_counts, stale_units

    out = sys.stdout
    document = {"analysis": str(an.path), "stages": stage_counts(an), "stale": stale_units(an)}
    head = json.dumps(document, indent=2, ensure_ascii=False)
    out.write(head[: head.rindex("}")].rstrip() + ',\n  "jobs": [')
    sep, buffered = "\n    ", []
    for job in job_rows(an, which or JobFilter()):
        buffered.append(sep + json.dumps(job, ensure_ascii=False, default=str))
        sep = ",\n    "
        if len(buffered) >= 1000:
            out.write("".join(buffered))
            buffered.clear()
    out.write("".join(buffered) + ("\n  ]\n}\n" if sep != "\n    " else "]\n}\n"))
    out.flush()


def print_status(
    an: Analysis,
    *,
    with_jobs: bool,
    json_output: bool,
    which: JobFilter | None = None,
    all_units: bool = False,
) -> None:
    """Counts per stage and particle by state (and job rows with --jobs: the first screen by default)."""
    from gridpipe.service.status import JobFilter, stage_counts, stale_units

    if json_output:
        write_status_json(an, which)
        return
    from rich.table import Table

    names = an.glance()
    table = Table(title=f"{names.analysis} ({names.backend} backend)")
    table.add_column("stage")
    table.add_column("particle")
    for state in SHOWN_STATES:
        table.add_column(state.value, justify="right")
    stale = stale_units(an)
    counts = stage_counts(an)
    order = [*names.stages, *sorted(set(counts) - set(names.stages))]
    folded = 0
    for stage in order:
        units = counts.get(stage, {})
        if len(units) > UNIT_ROWS_MAX and not all_units:  # a sweep's 10,000 units: one row
            total: dict[str, int] = {}
            for by_state in units.values():
                for state, n in by_state.items():
                    total[state] = total.get(state, 0) + n
            rows: list[tuple[str, dict[str, int]]] = [(f"({len(units)} units)", total)]
            folded += 1
        else:
            rows = sorted(units.items())
        for unit, by_state in rows:
            cells = (str(by_state[s]) if by_state.get(s) else "·" for s in SHOWN_STATES)
            label = f"{unit} (stale)" if unit in stale.get(stage, []) else unit
            table.add_row(stage, label, *cells)
    console().print(table)
    if stale:
        console().print("stale: made from outputs that were run again since; `gridpipe run` redoes them")
    if folded:
        console().print(f"stages with over {UNIT_ROWS_MAX} units are summed; --units shows every unit")
    if with_jobs:
        print_job_rows(an, which or JobFilter(limit=DEFAULT_JOB_ROWS, done_last=True))


def print_job_rows(an: Analysis, which: JobFilter) -> None:
    """Job rows: a table up to TABLE_ROWS_MAX rows, else tab-separated lines; then what was left out."""
    from gridpipe.service.status import JOB_KEYS, count_jobs, job_rows

    columns = [key for key in JOB_KEYS if key != "link"]  # the link is a column only when a job has one
    titles = [c.replace("_", " ").replace("updated", "last change") for c in [*columns, "link"]]
    out = console()
    shown = 0
    if which.limit is not None and which.limit <= TABLE_ROWS_MAX:
        from rich.table import Table

        jobs = list(job_rows(an, which))
        with_link = any(job["link"] for job in jobs)
        rows = Table()
        for title in titles[: len(columns) + with_link]:
            rows.add_column(title)
        for job in jobs:
            values = [_cell(job, c) for c in columns + (["link"] if with_link else [])]
            rows.add_row(*values)
        out.print(rows)
        shown = len(jobs)
    else:  # streamed, verbatim, one line per job: for `less`, `grep` and `cut`
        out.file.write("\t".join(titles) + "\n")
        lines: list[str] = []
        for job in job_rows(an, which):
            lines.append("\t".join(_cell(job, c).replace("\t", " ") for c in [*columns, "link"]))
            if len(lines) >= 1000:
                out.file.write("\n".join(lines) + "\n")
                lines.clear()
        out.file.write("".join(line + "\n" for line in lines))
        out.file.flush()
        return
    total = count_jobs(an, which) if which.limit is not None and shown >= which.limit else shown
    if total > shown:
        out.print(
            f"{shown} of {total} job(s) shown{' (not done first)' if which.done_last else ''}; "
            "--limit N or --all for more, --stage NAME / --status STATE to choose, --json for everything"
        )


def _cell(job: dict[str, object], column: str) -> str:
    value = job[column]
    if value is None:
        return ""
    return str(value)[:19] if column == "updated" else str(value)
