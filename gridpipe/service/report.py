"""`gridpipe report`: one self-contained HTML file (opens offline, no server) and `trace.tsv` (one row per
attempt), made from the job store alone: counts per stage and unit, a timeline of attempts, failures with
their reasons, grouped by reason and by site. Every text is escaped (autoescaping sandboxed Jinja2)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path

import jinja2
import jinja2.sandbox

from gridpipe.core.fsutil import atomic_write_text
from gridpipe.core.states import SHOWN_STATES
from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.core.version import __version__
from gridpipe.service.attempts import Attempt, read_attempts
from gridpipe.service.context import Analysis
from gridpipe.service.pace import DoneAttempt, pace
from gridpipe.service.status import stage_counts

TRACE_COLUMNS = (
    "job",
    "stage",
    "particle",
    "attempt",
    "backend",
    "backend_id",
    "site",
    "submitted",
    "started",
    "ended",
    "exit_code",
    "status",
    "reason",
)
"""Columns of trace.tsv (`started`: as the backend or the job's worker recorded it, else when gridpipe first saw
the attempt running; empty if it never did)."""

TIMELINE_ROWS_MAX = 2000
"""Attempts drawn in the timeline (the trace has them all)."""


def trace_row(a: Attempt) -> list[str]:
    """An attempt's trace.tsv row (TRACE_COLUMNS)."""
    values = (
        a.job,
        a.stage,
        a.particle,
        a.number,
        a.backend,
        a.backend_id,
        a.site,
        a.submitted,
        a.started,
        a.ended,
        a.exit_code,
        a.status,
        a.reason,
    )
    return ["" if v is None else " ".join(str(v).split()) for v in values]


@dataclass
class Bar:
    """One attempt in the timeline (percent of the span)."""

    label: str
    status: str
    left: float
    width: float
    title: str


@dataclass
class ReportData:
    """What the report shows."""

    name: str
    path: str
    backend: str
    generated: str
    version: str
    states: list[str]
    stages: dict[str, dict[str, dict[str, int]]]
    attempts: int
    failures: list[Attempt] = field(default_factory=list)
    by_reason: list[tuple[str, int]] = field(default_factory=list)
    by_site: list[tuple[str, int]] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    span: tuple[str, str] | None = None
    drawn: int = 0
    pace: list[PaceRow] = field(default_factory=list)
    pace_bucket: str = ""


@dataclass(frozen=True)
class PaceRow:
    """One stage's throughput over the whole run and its time to completion, as the report shows them."""

    stage: str
    done: int
    remaining: int
    per_hour: str
    eta: str
    bars: list[tuple[float, int]]
    """(height in percent of the busiest bucket, jobs done) per bucket of the run, oldest first."""


PACE_BUCKETS = 40


def duration_text(seconds: float | None) -> str:
    """`2 h 5 min`, `40 s`; `done` for 0, `unknown` for None (the two largest units)."""
    if seconds is None:
        return "unknown"
    if seconds == 0:
        return "done"
    left, parts = round(seconds), []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if left >= size and len(parts) < 2:
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts) or "< 1 s"


def run_pace(an: Analysis, attempts: list[Attempt], now: datetime) -> tuple[list[PaceRow], float]:
    """Every stage's pace over the whole run (from its first submission to now); the bucket in seconds."""
    done = [
        DoneAttempt(a.stage, datetime.fromisoformat(a.submitted), datetime.fromisoformat(a.ended))
        for a in attempts
        if a.status == "done" and a.ended
    ]
    first = min((datetime.fromisoformat(a.submitted) for a in attempts), default=now)
    window = max((now - first).total_seconds() * 1.001, 60.0)  # the first submission inside the window
    result = pace(stage_counts(an), done, now, window, PACE_BUCKETS)
    rows = []
    for p in result.stages:
        top = max(max(p.series), 1)
        rows.append(
            PaceRow(
                p.stage,
                p.done,
                p.remaining,
                "" if p.per_hour is None else f"{p.per_hour:.1f}",
                duration_text(p.eta_seconds),
                [(round(100 * n / top, 1), n) for n in p.series],
            )
        )
    return rows, result.bucket_s


def _bars(attempts: list[Attempt], now: datetime) -> tuple[list[Bar], tuple[str, str] | None]:
    if not attempts:
        return [], None
    starts = [datetime.fromisoformat(a.submitted) for a in attempts]
    ends = [datetime.fromisoformat(a.ended) if a.ended else now for a in attempts]
    first, last = min(starts), max(ends)
    total = max((last - first).total_seconds(), 1e-3)
    bars = []
    for a, start, end in zip(attempts, starts, ends, strict=True):
        left = 100 * (start - first).total_seconds() / total
        width = max(100 * (end - start).total_seconds() / total, 0.2)
        seconds = (end - start).total_seconds()
        bars.append(
            Bar(
                f"{a.job} #{a.number}",
                a.status,
                round(left, 3),
                round(min(width, 100 - left), 3),
                f"{a.job} attempt {a.number}: {a.status}, {seconds:.1f} s"
                + (f" ({a.reason})" if a.reason else ""),
            )
        )
    return bars, (isoformat(first), isoformat(last))


def gather_report(an: Analysis) -> tuple[ReportData, list[Attempt]]:
    """The report's content and every attempt (for the trace)."""
    attempts = read_attempts(an)
    failures = [a for a in attempts if a.status in ("failed", "killed")]
    drawn = attempts[-TIMELINE_ROWS_MAX:]
    now = utcnow()
    bars, span = _bars(drawn, now)
    pace_rows, bucket = run_pace(an, attempts, now)
    data = ReportData(
        name=an.grid.analysis_name,
        path=str(an.path),
        backend=an.grid.backend.name,
        generated=isoformat(utcnow()),
        version=__version__,
        states=[s.value for s in SHOWN_STATES],
        stages=stage_counts(an),
        attempts=len(attempts),
        failures=failures,
        by_reason=Counter(a.reason or f"exit code {a.exit_code}" for a in failures).most_common(),
        by_site=Counter(a.site or "(unknown)" for a in failures).most_common(),
        bars=bars,
        span=span,
        drawn=len(drawn),
        pace=pace_rows,
        pace_bucket=duration_text(bucket),
    )
    return data, attempts


def render_html(data: ReportData) -> str:
    """The self-contained HTML page."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = resources.files("gridpipe.service").joinpath("report.html.j2").read_text(encoding="utf-8")
    return env.from_string(template).render(r=data)


def trace_text(attempts: list[Attempt]) -> str:
    """trace.tsv: a header and one row per attempt (tabs and newlines inside a value become spaces)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
    writer.writerow(TRACE_COLUMNS)
    writer.writerows(trace_row(a) for a in attempts)
    return out.getvalue()


def write_report(an: Analysis, output: Path) -> tuple[Path, Path]:
    """Write the HTML report to `output` and trace.tsv beside it (atomically); both paths."""
    data, attempts = gather_report(an)
    trace = output.with_name("trace.tsv")
    atomic_write_text(output, render_html(data))
    atomic_write_text(trace, trace_text(attempts))
    return output, trace
