"""JobStore: bulk operations on the job archive, safe with several gridpipe processes at once.

Every state change of a job is written together with its event, in one transaction per batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from gridpipe.core.models import BackendStatus, JobSpec
from gridpipe.core.sqlite import open_database, select_in, transaction
from gridpipe.core.states import ACTIVE_STATES, JobStatus, UnitState
from gridpipe.core.timeutil import utcnow
from gridpipe.store.schema import check_version, migrate

_CURRENT = "(SELECT MAX(number) FROM attempts WHERE job_id = ?)"  # the job's latest attempt


@dataclass(frozen=True)
class JobRecord:
    """One job as the archive knows it (its spec is parsed only when asked for)."""

    name: str
    stage: str
    unit: str
    status: JobStatus
    attempts: int
    backend: str | None
    backend_id: str | None
    site: str | None
    reason: str | None
    flagged: bool
    updated: str
    spec_json: str

    @cached_property
    def spec(self) -> JobSpec:
        """The job's spec (parsed once per record)."""
        return JobSpec.from_json(json.loads(self.spec_json))


@dataclass(frozen=True)
class Event:
    """One line of the append-only event log."""

    ts: str
    job: str | None
    kind: str
    old: str | None
    new: str | None
    detail: str | None


SummaryRow = tuple[str, str, str, str, int, str | None, str | None, str, str | None, str | None]

_JOB_COLUMNS = (
    "name, stage, unit, status, attempts, backend, backend_id, site, reason, flagged, updated, spec"
)


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        name=row[0],
        stage=row[1],
        unit=row[2],
        status=JobStatus(row[3]),
        attempts=row[4],
        backend=row[5],
        backend_id=row[6],
        site=row[7],
        reason=row[8],
        flagged=bool(row[9]),
        updated=row[10],
        spec_json=row[11],
    )


JOB_ORDERS = {
    "planned": "id",
    "name": "name",
    "status": "status, id",
    "updated": "updated DESC, id",
}
"""Orders of `summary_rows` (name and status walk an index; updated, newest first, sorts)."""


def _filters(
    stage: str | None,
    unit: str | None,
    statuses: Iterable[JobStatus] | None,
    units: Collection[str] | None = None,
) -> tuple[str, list[str]]:
    where, args = [], []
    if stage is not None:
        where.append("stage = ?")
        args.append(stage)
    if unit is not None:
        where.append("unit = ?")
        args.append(unit)
    if units is not None:  # one JSON parameter: any number of units (a sweep may have 10,000)
        where.append("unit IN (SELECT value FROM json_each(?))")
        args.append(json.dumps(sorted(units)))
    if statuses is not None:
        wanted = [str(s) for s in statuses]
        where.append(f"status IN ({','.join('?' * len(wanted))})")
        args += wanted
    return (f"WHERE {' AND '.join(where)}" if where else ""), args


class JobStore:
    """The archive at `<analysis>/.gridpipe/state.db` (WAL mode, schema migrations)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        database = open_database(path, migrate)
        self._conn = database.conn
        self.readonly = database.readonly
        """True when this process may only read the store (another user's analysis, a read-only mount)."""
        if self.readonly:
            try:
                check_version(self._conn, path)
            except BaseException:
                self._conn.close()
                raise

    @classmethod
    def for_analysis(cls, analysis_path: Path) -> JobStore:
        """The store of an analysis."""
        return cls(analysis_path / ".gridpipe" / "state.db")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    @staticmethod
    def _by_name(conn: sqlite3.Connection, columns: str, names: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """{name: (columns...)} of the named jobs that exist, in chunked queries (`columns` is code)."""
        rows = select_in(conn, f"SELECT name, {columns} FROM jobs", "name", list(dict.fromkeys(names)))
        return {row[0]: row[1:] for row in rows}

    @staticmethod
    def _move_counts(conn: sqlite3.Connection, moves: Iterable[tuple[str, str, str, str]]) -> None:
        """Keep `job_counts` in step with status changes: (stage, unit, old status, new status) per job."""
        delta: Counter[tuple[str, str, str]] = Counter()
        for stage, unit, old, new in moves:
            if old != new:
                delta[(stage, unit, old)] -= 1
                delta[(stage, unit, new)] += 1
        conn.executemany(
            "INSERT INTO job_counts (stage, unit, status, n) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (stage, unit, status) DO UPDATE SET n = n + excluded.n",
            [(*key, n) for key, n in delta.items() if n],
        )

    @staticmethod
    def _events(conn: sqlite3.Connection, rows: Sequence[tuple[object, ...]]) -> None:
        """Append events (ts, job_id, kind, old, new, detail) in one statement."""
        conn.executemany(
            "INSERT INTO events (ts, job_id, kind, old, new, detail) VALUES (?, ?, ?, ?, ?, ?)", rows
        )

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        ts: str,
        job_id: int | None,
        kind: str,
        old: str | None,
        new: str | None,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO events (ts, job_id, kind, old, new, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (ts, job_id, kind, old, new, detail),
        )

    # ---- jobs -----------------------------------------------------------------------------------
    def add_jobs(self, specs: Iterable[JobSpec]) -> list[str]:
        """Record planned jobs in one transaction; jobs whose name exists are left alone. Returns new names.

        One bulk insert: new rows get ids above the largest before it (the write lock is held), so their
        events are written by one INSERT ... SELECT and their names read back in order.
        """
        now = utcnow().isoformat()
        rows = [
            (spec.name, spec.stage, spec.unit, json.dumps(spec.to_json()), JobStatus.PLANNED, now)
            for spec in specs
        ]
        if not rows:
            return []
        with self._tx() as conn:
            last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM jobs").fetchone()[0]
            conn.executemany(
                "INSERT OR IGNORE INTO jobs (name, stage, unit, spec, status, updated) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "INSERT INTO events (ts, job_id, kind, old, new, detail)"
                " SELECT ?, id, 'planned', NULL, ?, NULL FROM jobs WHERE id > ? ORDER BY id",
                (now, JobStatus.PLANNED, last),
            )
            conn.execute(
                "INSERT INTO job_counts (stage, unit, status, n)"
                " SELECT stage, unit, status, COUNT(*) FROM jobs WHERE id > ? GROUP BY stage, unit, status"
                " ON CONFLICT (stage, unit, status) DO UPDATE SET n = n + excluded.n",
                (last,),
            )
            return [row[0] for row in conn.execute("SELECT name FROM jobs WHERE id > ? ORDER BY id", (last,))]

    def get(self, names: Sequence[str]) -> dict[str, JobRecord]:
        """Records of the named jobs that exist."""
        rows = select_in(self._conn, f"SELECT {_JOB_COLUMNS} FROM jobs", "name", list(names))
        return {row[0]: _record(row) for row in rows}

    def grid_outputs(self, names: Sequence[str]) -> dict[str, list[str]]:
        """The output LFNs of those named grid jobs that have outputs, read from their specs by SQLite (no
        spec is parsed here: a refresh asks this of every job that ended)."""
        rows = select_in(
            self._conn,
            "SELECT name, json_extract(spec, '$.outputs') FROM jobs",
            "name",
            list(names),
            "AND coalesce(json_extract(spec, '$.where'), 'grid') = 'grid'"
            " AND json_array_length(spec, '$.outputs') > 0",
        )
        return {name: json.loads(outputs) for name, outputs in rows}

    def jobs(
        self,
        *,
        stage: str | None = None,
        unit: str | None = None,
        statuses: Iterable[JobStatus] | None = None,
        units: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[JobRecord]:
        """Jobs filtered by stage, unit (or units) and status, in insertion order; at most `limit`."""
        return list(self.iter_jobs(stage=stage, unit=unit, statuses=statuses, units=units, limit=limit))

    def iter_jobs(
        self,
        *,
        stage: str | None = None,
        unit: str | None = None,
        statuses: Iterable[JobStatus] | None = None,
        units: Collection[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[JobRecord]:
        """Like `jobs`, read through a cursor (memory stays flat however many jobs there are)."""
        clause, args = _filters(stage, unit, statuses, units)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY id" + (
            " LIMIT ?" if limit is not None else ""
        )
        for row in self._conn.execute(sql, [*args, limit] if limit is not None else args):
            yield _record(row)

    def names(self) -> set[str]:
        """The names of every job (one light query)."""
        return {row[0] for row in self._conn.execute("SELECT name FROM jobs")}

    def inputs_by_unit(self, stage: str) -> dict[str, set[str]]:
        """{unit: input LFNs of its jobs} of one stage (the specs are parsed once, in one query)."""
        out: dict[str, set[str]] = {}
        for unit, spec in self._conn.execute("SELECT unit, spec FROM jobs WHERE stage = ?", (stage,)):
            out.setdefault(unit, set()).update(json.loads(spec).get("inputs", ()))
        return out

    def count(
        self,
        *,
        stage: str | None = None,
        unit: str | None = None,
        statuses: Iterable[JobStatus] | None = None,
        units: Collection[str] | None = None,
        limit: int | None = None,
    ) -> int:
        """Number of jobs matching the filters, counted up to `limit` if given (no rows are read)."""
        clause, args = _filters(stage, unit, statuses, units)
        if limit is not None:
            sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM jobs {clause} LIMIT ?)"
            return self._conn.execute(sql, [*args, limit]).fetchone()[0]
        return self._conn.execute(f"SELECT COUNT(*) FROM jobs {clause}", args).fetchone()[0]

    def status_counts(self, stage: str, unit: str) -> dict[str, int]:
        """{status: n} of one unit."""
        rows = self._conn.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE stage = ? AND unit = ? GROUP BY status", (stage, unit)
        )
        return dict(rows.fetchall())

    def active_ids(self) -> dict[str, list[str]]:
        """{backend name: backend ids} of the jobs a backend is running or holds (one light query)."""
        clause, args = _filters(None, None, ACTIVE_STATES)
        out: dict[str, list[str]] = {}
        sql = f"SELECT backend, backend_id FROM jobs {clause} AND backend_id IS NOT NULL ORDER BY id"
        for backend, backend_id in self._conn.execute(sql, args):
            out.setdefault(backend or "", []).append(backend_id)
        return out

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """{stage: {unit: {status: n}}}, read from the counts the store keeps (a few rows, not every job)."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        rows = self._conn.execute("SELECT stage, unit, status, n FROM job_counts WHERE n > 0")
        for stage, unit, status, n in rows:
            out.setdefault(stage, {}).setdefault(unit, {})[status] = n
        return out

    def summary_rows(
        self,
        *,
        stage: str | None = None,
        statuses: Iterable[JobStatus] | None = None,
        limit: int | None = None,
        done_last: bool = False,
        unit: str | None = None,
        offset: int = 0,
        order: str = "planned",
    ) -> Iterator[SummaryRow]:
        """(name, stage, unit, status, submissions, backend_id, site, updated, reason, backend) of the jobs,
        in insertion order (jobs not done first with `done_last`), read through a cursor: memory stays flat
        however many jobs there are. `offset` skips that many (a page; not with `done_last`); `order` is one of
        JOB_ORDERS (planned: insertion order).

        Submissions count every attempt a backend took (a user's resubmission included); the retry budget
        (`JobRecord.attempts`, reset by `resubmit`) is a separate number.
        """
        clause, args = _filters(stage, unit, statuses)
        clause = clause.replace("status IN", "+status IN")  # walk the rows in id order, stop at `limit`
        select = (
            "SELECT name, stage, unit, status,"
            " (SELECT COUNT(*) FROM attempts a WHERE a.job_id = jobs.id), backend_id, site, updated,"
            " reason, backend FROM jobs"
        )
        parts = [(clause, args)]
        if done_last:  # two walks in id order (no sort of every row): jobs not done, then done ones
            joiner = " AND " if clause else "WHERE "
            parts = [
                (clause + joiner + "+status != 'done'", args),
                (clause + joiner + "+status = 'done'", args),
            ]
        left = -1 if limit is None else limit
        for where, values in parts:
            cursor = self._conn.cursor()  # its own cursor: other queries may run while it is read
            cursor.arraysize = 1000
            sql = f"{select} {where} ORDER BY {JOB_ORDERS[order]} LIMIT ? OFFSET ?"
            for row in cursor.execute(sql, [*values, left, offset]):
                left -= 1
                yield row
            if left == 0:
                return

    # ---- submission protocol --------------------------------------------------------------------
    def begin_attempts(self, names: Sequence[str], backend: str) -> None:
        """Record the intent to submit (status `submitting`, a new attempt) before the backend is called."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            jobs = self._by_name(conn, "id, status, attempts, stage, unit", names)
            missing = [name for name in names if name not in jobs]
            if missing:
                raise KeyError(missing[0])
            ids = [row[0] for row in jobs.values()]
            numbers = dict.fromkeys(ids, 1)
            numbers.update(
                select_in(
                    conn, "SELECT job_id, MAX(number) + 1 FROM attempts", "job_id", ids, "GROUP BY job_id"
                )
            )
            conn.executemany(
                "UPDATE jobs SET status = ?, attempts = ?, backend = ?, backend_id = NULL, site = NULL,"
                " reason = NULL, flagged = 0, updated = ? WHERE id = ?",
                [(JobStatus.SUBMITTING, n + 1, backend, now, job_id) for job_id, _, n, _, _ in jobs.values()],
            )
            conn.executemany(
                "INSERT INTO attempts (job_id, number, backend, status, submitted) VALUES (?, ?, ?, ?, ?)",
                [(job_id, numbers[job_id], backend, JobStatus.SUBMITTING, now) for job_id in ids],
            )
            self._events(
                conn,
                [
                    (now, job_id, "submitting", old, JobStatus.SUBMITTING, f"attempt {numbers[job_id]}")
                    for job_id, old, *_ in jobs.values()
                ],
            )
            self._move_counts(
                conn, [(st, u, old, JobStatus.SUBMITTING) for _, old, _, st, u in jobs.values()]
            )

    def confirm_submitted(self, submitted: dict[str, str], *, adopted: bool = False) -> None:
        """Store the backend ids of jobs the backend accepted (or that reconciliation found)."""
        now = utcnow().isoformat()
        kind = "adopted" if adopted else "submitted"
        with self._tx() as conn:
            jobs = self._by_name(conn, "id, status, stage, unit", list(submitted))
            # only the intent recorded before the backend call is confirmed
            todo = [
                (jobs[name][0], backend_id)
                for name, backend_id in submitted.items()
                if name in jobs and jobs[name][1] == JobStatus.SUBMITTING
            ]
            self._move_counts(
                conn,
                [
                    (jobs[name][2], jobs[name][3], JobStatus.SUBMITTING, JobStatus.QUEUED)
                    for name in dict.fromkeys(submitted)
                    if name in jobs and jobs[name][1] == JobStatus.SUBMITTING
                ],
            )
            conn.executemany(
                "UPDATE jobs SET status = ?, backend_id = ?, updated = ? WHERE id = ?",
                [(JobStatus.QUEUED, backend_id, now, job_id) for job_id, backend_id in todo],
            )
            conn.executemany(
                f"UPDATE attempts SET status = ?, backend_id = ? WHERE job_id = ? AND number = {_CURRENT}",
                [(JobStatus.QUEUED, backend_id, job_id, job_id) for job_id, backend_id in todo],
            )
            self._events(
                conn,
                [
                    (now, job_id, kind, JobStatus.SUBMITTING, JobStatus.QUEUED, backend_id)
                    for job_id, backend_id in todo
                ],
            )

    def revert_unsubmitted(self, names: Sequence[str], reason: str) -> None:
        """Jobs the backend did not take: back to `planned`, the attempt closed as failed."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            for name in names:
                job_id, number, status, stage, unit = conn.execute(
                    "SELECT id, attempts, status, stage, unit FROM jobs WHERE name = ?", (name,)
                ).fetchone()
                if status != JobStatus.SUBMITTING:
                    continue  # someone else settled this job meanwhile: never undo a confirmed submission
                self._move_counts(conn, [(stage, unit, status, JobStatus.PLANNED)])
                conn.execute(
                    "UPDATE jobs SET status = ?, attempts = ?, reason = ?, updated = ? WHERE id = ?",
                    (JobStatus.PLANNED, number - 1, reason, now, job_id),
                )
                conn.execute(
                    f"DELETE FROM attempts WHERE job_id = ? AND number = {_CURRENT}", (job_id, job_id)
                )
                self._event(conn, now, job_id, "not-submitted", status, JobStatus.PLANNED, reason)

    def attempt_ids(self, name: str) -> set[str]:
        """Backend ids of every attempt of a job that the backend confirmed."""
        rows = self._conn.execute(
            "SELECT a.backend_id FROM attempts a JOIN jobs j ON j.id = a.job_id"
            " WHERE j.name = ? AND a.backend_id IS NOT NULL",
            (name,),
        )
        return {row[0] for row in rows}

    # ---- status updates -------------------------------------------------------------------------
    def apply_statuses(self, backend: str, updates: Sequence[BackendStatus]) -> list[tuple[str, JobStatus]]:
        """Apply backend reports to the current attempts; returns (job name, new status) of jobs that changed.

        The jobs' current states are read in one query; only jobs whose state changed are written.
        """
        now = utcnow().isoformat()
        rows = select_in(
            self._conn,
            "SELECT backend_id, id, name, status, site, flagged, backend FROM jobs",
            "backend_id",
            [u.backend_id for u in updates],
        )
        current = {row[0]: row[1:] for row in rows if row[6] == backend}
        fresh = [
            (u, current[u.backend_id])
            for u in updates
            if u.backend_id in current
            and (current[u.backend_id][2] != u.status or bool(current[u.backend_id][4]) != u.flagged)
        ]
        if not fresh:
            return []
        changed: list[tuple[str, JobStatus]] = []
        jobs, attempts, events, moves = [], [], [], []
        with self._tx() as conn:
            # re-read inside the transaction: another process may have moved them
            again = {
                row[0]: row[1:]
                for row in select_in(
                    conn,
                    "SELECT id, status, site, flagged, backend, backend_id, stage, unit FROM jobs",
                    "id",
                    [job_id for _, (job_id, *_) in fresh],
                )
            }
            for update, (job_id, name, *_) in fresh:
                row = again.get(job_id)
                if row is None or row[3] != backend or row[4] != update.backend_id:
                    continue
                if row[0] == update.status and bool(row[2]) == update.flagged:
                    continue
                old, site = row[0], update.site or row[1]
                ended = now if update.status not in ACTIVE_STATES else None
                # the backend's start time, else the first time it was seen running (kept once set)
                started = update.started or (now if update.status == JobStatus.RUNNING else None)
                jobs.append((update.status, site, update.reason, int(update.flagged), now, job_id))
                attempts.append(
                    (update.status, site, update.exit_code, update.reason, ended, started, job_id, job_id)
                )
                events.append((now, job_id, "status", old, update.status, update.reason))
                moves.append((row[5], row[6], old, update.status))
                again[job_id] = (update.status, site, int(update.flagged), *row[3:])
                changed.append((name, update.status))
            conn.executemany(
                "UPDATE jobs SET status = ?, site = ?, reason = ?, flagged = ?, updated = ? WHERE id = ?",
                jobs,
            )
            conn.executemany(
                "UPDATE attempts SET status = ?, site = ?, exit_code = ?, reason = ?, ended = ?,"
                f" started = COALESCE(started, ?) WHERE job_id = ? AND number = {_CURRENT}",
                attempts,
            )
            self._events(conn, events)
            self._move_counts(conn, moves)
        return changed

    def set_status(
        self,
        names: Sequence[str],
        status: JobStatus,
        reason: str | None = None,
        *,
        only_from: Collection[JobStatus] | None = None,
    ) -> list[str]:
        """Set a status decided by gridpipe itself (failed for good, killed, reset to planned); returns the
        jobs changed. With `only_from`, a job is changed only while it is still in one of those states
        (another process may have moved it since it was read)."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            jobs = self._by_name(conn, "id, status, stage, unit", names)
            todo = [
                (name, *jobs[name])
                for name in dict.fromkeys(names)
                if name in jobs
                and jobs[name][1] != status
                and (only_from is None or jobs[name][1] in only_from)
            ]
            conn.executemany(
                "UPDATE jobs SET status = ?, reason = COALESCE(?, reason), updated = ? WHERE id = ?",
                [(status, reason, now, job_id) for _, job_id, *_ in todo],
            )
            self._events(conn, [(now, job_id, "status", old, status, reason) for _, job_id, old, *_ in todo])
            self._move_counts(conn, [(stage, unit, old, status) for _, _, old, stage, unit in todo])
        return [name for name, *_ in todo]

    def reset_attempts(self, names: Sequence[str]) -> None:
        """Give jobs a fresh attempt budget (user-requested resubmission); attempt rows keep their numbers."""
        with self._tx() as conn:
            for name in names:
                conn.execute("UPDATE jobs SET attempts = 0 WHERE name = ?", (name,))

    # ---- files, events, stage state --------------------------------------------------------------
    def add_files(
        self, job: str | None, kind: str, files: Iterable[tuple[str, int | None, str | None]]
    ) -> None:
        """Record files (lfn, size, adler32) produced by or given to a job."""
        self.add_files_many(kind, [(job, lfn, size, adler) for lfn, size, adler in files])

    def add_files_many(
        self, kind: str, files: Sequence[tuple[str | None, str, int | None, str | None]]
    ) -> None:
        """Record files (job name or None, lfn, size, adler32) in one transaction."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            ids = {
                name: row[0] for name, row in self._by_name(conn, "id", [f[0] for f in files if f[0]]).items()
            }
            conn.executemany(
                "INSERT OR REPLACE INTO files (lfn, job_id, kind, size, adler32, registered) VALUES (?, ?, ?, ?, ?, ?)",
                [(lfn, ids.get(job or ""), kind, size, adler, now) for job, lfn, size, adler in files],
            )

    def files(self, kind: str | None = None) -> list[tuple[str, int | None, str | None]]:
        """Recorded files (lfn, size, adler32), optionally of one kind."""
        sql = "SELECT lfn, size, adler32 FROM files" + (" WHERE kind = ?" if kind else "") + " ORDER BY lfn"
        return list(self._conn.execute(sql, (kind,) if kind else ()))

    def events(self, name: str | None = None) -> list[Event]:
        """The event log, of one job or of everything."""
        sql = (
            "SELECT e.ts, j.name, e.kind, e.old, e.new, e.detail FROM events e LEFT JOIN jobs j ON j.id = e.job_id"
            + (" WHERE j.name = ?" if name else "")
            + " ORDER BY e.id"
        )
        return [Event(*row) for row in self._conn.execute(sql, (name,) if name else ())]

    def failure_groups(self) -> dict[str, list[tuple[str | None, int]]]:
        """Failed or killed jobs counted by reason and by site (most first), in two grouped queries."""
        out: dict[str, list[tuple[str | None, int]]] = {}
        for column in ("reason", "site"):
            sql = (
                f"SELECT {column}, COUNT(*) AS n FROM jobs WHERE status IN ('failed', 'killed') "
                f"GROUP BY {column} ORDER BY n DESC, {column}"
            )
            out[column] = list(self._conn.execute(sql))
        return out

    def attempt_rows(self, name: str | None = None) -> Iterator[tuple[object, ...]]:
        """(job, stage, unit, number, backend, backend_id, status, site, exit_code, reason, submitted,
        started, ended) of every attempt (of one job), in order, read through a cursor."""
        cursor = self._conn.cursor()
        cursor.arraysize = 1000
        sql = (
            "SELECT j.name, j.stage, j.unit, a.number, a.backend, a.backend_id, a.status, a.site, a.exit_code,"
            " a.reason, a.submitted, a.started, a.ended FROM attempts a JOIN jobs j ON j.id = a.job_id"
            + (" WHERE j.name = ?" if name else "")
            + " ORDER BY a.id"
        )
        yield from cursor.execute(sql, (name,) if name else ())

    def done_since(self, since: str) -> list[tuple[str, str, int, str]]:
        """Attempts that ended done after `since` (ISO text, UTC) by stage and second of their end: (stage,
        `YYYY-MM-DDTHH:MM:SS` UTC, how many, earliest submission), through the index on done attempts' ends."""
        return list(
            self._conn.execute(
                "SELECT j.stage, substr(a.ended, 1, 19) AS second, COUNT(*), MIN(a.submitted)"
                " FROM attempts a JOIN jobs j ON j.id = a.job_id"
                " WHERE a.status = 'done' AND a.ended > ? GROUP BY j.stage, second",
                (since,),
            )
        )

    def log_event(self, kind: str, detail: str, job: str | None = None) -> None:
        """Append an event that is not a job state change (stage gathered, models uploaded, ...)."""
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone() if job else None
            self._event(conn, utcnow().isoformat(), row[0] if row else None, kind, None, None, detail)

    def stage_state(self, stage: str, unit: str) -> UnitState | None:
        """Progress marker of a unit beyond its jobs (e.g. gathered)."""
        row = self._conn.execute(
            "SELECT state FROM stage_state WHERE stage = ? AND unit = ?", (stage, unit)
        ).fetchone()
        return UnitState(row[0]) if row else None

    def unit_states(self) -> dict[tuple[str, str], UnitState]:
        """{(stage, unit): progress marker} of every unit that has one (one query)."""
        rows = self._conn.execute("SELECT stage, unit, state FROM stage_state")
        return {(stage, unit): UnitState(state) for stage, unit, state in rows}

    def set_stage_state(self, stage: str, unit: str, state: UnitState, detail: str | None = None) -> None:
        """Record a unit's progress marker, with an event."""
        self.set_stage_states(stage, state, {unit: detail})

    def set_stage_states(self, stage: str, state: UnitState, details: dict[str, str | None]) -> None:
        """Record one progress marker for several units of a stage ({unit: detail}), with their events, in
        one transaction."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO stage_state (stage, unit, state, detail, updated) VALUES (?, ?, ?, ?, ?)",
                [(stage, unit, state, detail, now) for unit, detail in details.items()],
            )
            self._events(
                conn,
                [
                    (
                        now,
                        None,
                        f"unit-{state}",
                        None,
                        state,
                        f"{stage}/{unit}" + (f": {detail}" if detail else ""),
                    )
                    for unit, detail in details.items()
                ],
            )

    def unit_counts(self, stage: str) -> dict[str, int]:
        """{unit: number of jobs} of one stage (one grouped query)."""
        rows = self._conn.execute(
            "SELECT unit, SUM(n) FROM job_counts WHERE stage = ? GROUP BY unit HAVING SUM(n) > 0", (stage,)
        )
        return dict(rows.fetchall())
