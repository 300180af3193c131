"""Tables and JSON for job commands (printing only; the data comes from the service layer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from gridpipe.cli.output import command_line, console, print_json, styled
from gridpipe.core.states import SHOWN_STATES, JobStatus

if TYPE_CHECKING:
    from gridpipe.backends.contract import Backend
    from gridpipe.service.context import Analysis
    from gridpipe.service.jobs import ResubmitReport, SubmitOutcome


def _shown(status: str) -> str:
    return JobStatus.QUEUED.value if status == JobStatus.SUBMITTING else status


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
    earlier = set(outcome.already_planned)
    for spec in outcome.to_submit:
        when = ", planned earlier" if spec.name in earlier else ""
        out.print(
            styled((spec.name, "bold"), f"  ({spec.stage}/{spec.unit}, {len(spec.inputs)} input(s){when})")
        )
        for lfn in spec.inputs:
            out.print(f"  in   {lfn}")
        for argv in spec.commands:
            out.print(f"  run  {command_line(*argv)}")
        for lfn in spec.outputs:
            out.print(f"  out  {lfn}")
        if described[spec.name]:
            for line in (described[spec.name] or "").splitlines():
                out.print(f"  jdl  {line}")
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
        out.print(styled(f"stale: {stage} ({', '.join(units)}): `gridpipe run` redoes it"))


def _link(an: Analysis, backend: str | None, backend_id: str | None) -> str | None:
    if not backend_id or backend != an.grid.backend.name or backend == "local":
        return None
    return an.backend.link(backend_id)


def status_data(an: Analysis) -> dict[str, object]:
    """The documented JSON form of `status`."""
    stages: dict[str, dict[str, dict[str, int]]] = {}
    for stage, units in an.store.counts().items():
        for unit, counts in units.items():
            merged: dict[str, int] = {}
            for status, n in counts.items():
                merged[_shown(status)] = merged.get(_shown(status), 0) + n
            stages.setdefault(stage, {})[unit] = merged
    jobs = [
        {
            "name": r[0],
            "stage": r[1],
            "particle": r[2],
            "status": _shown(r[3]),
            "attempts": r[4],
            "backend_id": r[5],
            "site": r[6],
            "updated": r[7],
            "reason": r[8],
            "link": _link(an, r[9], r[5]),
        }
        for r in an.store.summary_rows()
    ]
    from gridpipe.service.rerun import stale_units

    return {"analysis": str(an.path), "stages": stages, "stale": stale_units(an), "jobs": jobs}


def print_status(an: Analysis, *, with_jobs: bool, json_output: bool) -> None:
    """Counts per stage and particle by state (and one row per job with --jobs)."""
    if json_output:
        print_json(status_data(an))
        return
    table = Table(title=f"{an.grid.analysis_name} ({an.grid.backend.name} backend)")
    table.add_column("stage")
    table.add_column("particle")
    for state in SHOWN_STATES:
        table.add_column(state.value, justify="right")
    from gridpipe.service.rerun import stale_units

    stale = stale_units(an)
    counts = an.store.counts()
    order = [s.name for s in an.workflow.stages] + sorted(set(counts) - {s.name for s in an.workflow.stages})
    for stage in order:
        for unit, by_state in sorted(counts.get(stage, {}).items()):
            shown = {s: 0 for s in SHOWN_STATES}
            for status, n in by_state.items():
                shown[JobStatus(_shown(status))] += n
            label = f"{unit} (stale)" if unit in stale.get(stage, []) else unit
            table.add_row(stage, label, *(str(shown[s]) if shown[s] else "·" for s in SHOWN_STATES))
    console().print(table)
    if stale:
        console().print("stale: made from outputs that were run again since; `gridpipe run` redoes them")
    if with_jobs:
        data = status_data(an)["jobs"]
        assert isinstance(data, list)
        columns = [
            "name",
            "stage",
            "particle",
            "status",
            "attempts",
            "backend_id",
            "site",
            "updated",
            "reason",
        ]
        if any(job["link"] for job in data):
            columns.append("link")
        rows = Table()
        for col in columns:
            rows.add_column(col.replace("_", " ").replace("updated", "last change"))
        for job in data:
            values = {**job, "updated": str(job["updated"])[:19]}
            rows.add_row(*(str(values[c]) if values[c] is not None else "" for c in columns))
        console().print(rows)
