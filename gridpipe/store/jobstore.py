"""JobStore: bulk operations on the job archive, safe with several gridpipe processes at once.

Every state change of a job is written together with its event, in one transaction per batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def spec(self) -> JobSpec:
        """The job's spec."""
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
            check_version(self._conn, path)

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
            return [row[0] for row in conn.execute("SELECT name FROM jobs WHERE id > ? ORDER BY id", (last,))]

    def get(self, names: Sequence[str]) -> dict[str, JobRecord]:
        """Records of the named jobs that exist."""
        rows = select_in(self._conn, f"SELECT {_JOB_COLUMNS} FROM jobs", "name", list(names))
        return {row[0]: _record(row) for row in rows}

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
        """{stage: {unit: {status: n}}} in one grouped query."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        rows = self._conn.execute(
            "SELECT stage, unit, status, COUNT(*) FROM jobs GROUP BY stage, unit, status"
        )
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
            for name in names:
                job_id, status, attempts = conn.execute(
                    "SELECT id, status, attempts FROM jobs WHERE name = ?", (name,)
                ).fetchone()
                conn.execute(
                    "UPDATE jobs SET status = ?, attempts = ?, backend = ?, backend_id = NULL, site = NULL,"
                    " reason = NULL, flagged = 0, updated = ? WHERE id = ?",
                    (JobStatus.SUBMITTING, attempts + 1, backend, now, job_id),
                )
                number = conn.execute(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM attempts WHERE job_id = ?", (job_id,)
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO attempts (job_id, number, backend, status, submitted) VALUES (?, ?, ?, ?, ?)",
                    (job_id, number, backend, JobStatus.SUBMITTING, now),
                )
                self._event(
                    conn, now, job_id, "submitting", status, JobStatus.SUBMITTING, f"attempt {number}"
                )

    def confirm_submitted(self, submitted: dict[str, str], *, adopted: bool = False) -> None:
        """Store the backend ids of jobs the backend accepted (or that reconciliation found)."""
        now = utcnow().isoformat()
        kind = "adopted" if adopted else "submitted"
        with self._tx() as conn:
            for name, backend_id in submitted.items():
                row = conn.execute("SELECT id, status FROM jobs WHERE name = ?", (name,)).fetchone()
                if row is None or row[1] != JobStatus.SUBMITTING:
                    continue  # only the intent recorded before the backend call is confirmed
                job_id = row[0]
                conn.execute(
                    "UPDATE jobs SET status = ?, backend_id = ?, updated = ? WHERE id = ?",
                    (JobStatus.QUEUED, backend_id, now, job_id),
                )
                conn.execute(
                    f"UPDATE attempts SET status = ?, backend_id = ? WHERE job_id = ? AND number = {_CURRENT}",
                    (JobStatus.QUEUED, backend_id, job_id, job_id),
                )
                self._event(conn, now, job_id, kind, JobStatus.SUBMITTING, JobStatus.QUEUED, backend_id)

    def revert_unsubmitted(self, names: Sequence[str], reason: str) -> None:
        """Jobs the backend did not take: back to `planned`, the attempt closed as failed."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            for name in names:
                job_id, number, status = conn.execute(
                    "SELECT id, attempts, status FROM jobs WHERE name = ?", (name,)
                ).fetchone()
                if status != JobStatus.SUBMITTING:
                    continue  # someone else settled this job meanwhile: never undo a confirmed submission
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
        with self._tx() as conn:
            for update, (job_id, name, _seen, _site, _flagged, _backend) in fresh:
                row = conn.execute(  # re-read inside the transaction: another process may have moved it
                    "SELECT status, site, flagged FROM jobs WHERE id = ? AND backend = ? AND backend_id = ?",
                    (job_id, backend, update.backend_id),
                ).fetchone()
                if row is None or (row[0] == update.status and bool(row[2]) == update.flagged):
                    continue
                old, site = row[0], update.site or row[1]
                ended = now if update.status not in ACTIVE_STATES else None
                # the backend's start time, else the first time it was seen running (kept once set)
                started = update.started or (now if update.status == JobStatus.RUNNING else None)
                conn.execute(
                    "UPDATE jobs SET status = ?, site = ?, reason = ?, flagged = ?, updated = ? WHERE id = ?",
                    (update.status, site, update.reason, int(update.flagged), now, job_id),
                )
                conn.execute(
                    "UPDATE attempts SET status = ?, site = ?, exit_code = ?, reason = ?, ended = ?,"
                    f" started = COALESCE(started, ?) WHERE job_id = ? AND number = {_CURRENT}",
                    (update.status, site, update.exit_code, update.reason, ended, started, job_id, job_id),
                )
                self._event(conn, now, job_id, "status", old, update.status, update.reason)
                changed.append((name, update.status))
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
        changed: list[str] = []
        with self._tx() as conn:
            for name in names:
                row = conn.execute("SELECT id, status FROM jobs WHERE name = ?", (name,)).fetchone()
                if row is None or row[1] == status or (only_from is not None and row[1] not in only_from):
                    continue
                conn.execute(
                    "UPDATE jobs SET status = ?, reason = COALESCE(?, reason), updated = ? WHERE id = ?",
                    (status, reason, now, row[0]),
                )
                self._event(conn, now, row[0], "status", row[1], status, reason)
                changed.append(name)
        return changed

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
            ids: dict[str, int] = {}
            for job in {f[0] for f in files if f[0]}:
                row = conn.execute("SELECT id FROM jobs WHERE name = ?", (job,)).fetchone()
                if row:
                    ids[job] = row[0]
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
        now = utcnow().isoformat()
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO stage_state (stage, unit, state, detail, updated) VALUES (?, ?, ?, ?, ?)",
                (stage, unit, state, detail, now),
            )
            self._event(
                conn,
                now,
                None,
                f"unit-{state}",
                None,
                state,
                f"{stage}/{unit}" + (f": {detail}" if detail else ""),
            )
