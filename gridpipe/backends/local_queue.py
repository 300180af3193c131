"""The local backend's queue: a SQLite file shared by `gridpipe` commands and the detached executor."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from gridpipe.core.models import JobSpec
from gridpipe.core.sqlite import open_database, select_in, transaction
from gridpipe.core.timeutil import utcnow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    reason TEXT,
    submitted TEXT NOT NULL,
    started TEXT,
    ended TEXT,
    cancel INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_name ON jobs (name);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    started TEXT NOT NULL,
    executor_pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (job_id INTEGER PRIMARY KEY, stdout TEXT, stderr TEXT);
"""
_ROW_SELECT = "SELECT id, name, status, exit_code, reason, cancel, slot, started FROM jobs"
_RUNNING_BY = (
    "SELECT id, name, status, exit_code, reason, cancel, slot, started FROM jobs WHERE status = 'running' AND id IN "
    "(SELECT job_id FROM ledger WHERE executor_pid = ?)"
)


class Outcome(NamedTuple):
    """How a job of the queue ended: status, exit code, reason, its logs (None: kept in a file) and when its
    payload started (None: when it was claimed)."""

    job_id: int
    status: str
    exit_code: int | None
    reason: str | None
    stdout: str | None = ""
    stderr: str | None = ""
    started: str | None = None


@dataclass(frozen=True)
class QueueRow:
    """One job of the local queue."""

    id: int
    name: str
    status: str
    exit_code: int | None
    reason: str | None
    cancel: bool
    slot: int | None
    started: str | None = None


class LocalQueue:
    """Jobs of the local backend; `ledger` records every start of a payload (exactly-once evidence): its line
    is written when a runner claims the job and taken back if the runner gives the job back unstarted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._conn = open_database(root / "queue.db", _setup).conn

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    def add(self, specs: Sequence[JobSpec]) -> dict[str, str]:
        """Queue jobs in one transaction; return {name: id}."""
        now = utcnow().isoformat()
        ids: dict[str, str] = {}
        with self._tx() as conn:
            for spec in specs:
                cur = conn.execute(
                    "INSERT INTO jobs (name, spec, status, submitted) VALUES (?, ?, 'queued', ?)",
                    (spec.name, json.dumps(spec.to_json()), now),
                )
                ids[spec.name] = str(cur.lastrowid)
        return ids

    def rows(self, ids: Sequence[str]) -> list[QueueRow]:
        """Rows of the given ids (chunked `IN` queries)."""
        return [_row(r) for r in select_in(self._conn, _ROW_SELECT, "id", [int(i) for i in ids])]

    def by_names(self, names: Sequence[str]) -> list[QueueRow]:
        """Rows whose name is one of `names`."""
        return [_row(r) for r in select_in(self._conn, _ROW_SELECT, "name", list(names))]

    def request_cancel(self, ids: Sequence[str]) -> None:
        """Mark jobs for cancellation; queued ones are killed at once, running ones by the executor."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            for job_id in ids:
                conn.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (int(job_id),))
                conn.execute(
                    "UPDATE jobs SET status = 'killed', reason = 'killed before it started', ended = ? "
                    "WHERE id = ? AND status = 'queued'",
                    (now, int(job_id)),
                )

    def fail_queued(self, reason: str) -> None:
        """Fail every queued job with `reason` (the executor cannot run them)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', reason = ?, ended = ? WHERE status = 'queued'",
                (reason, utcnow().isoformat()),
            )

    def count(self, status: str) -> int:
        """Number of jobs in a status."""
        return self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    # ---- executor side ----------------------------------------------------------------------------
    def claim(self, limit: int, runner_pid: int, slot: int | None = None) -> list[tuple[int, JobSpec]]:
        """Move up to `limit` queued jobs to running and write their ledger lines, atomically."""
        return self.finish_and_claim([], limit, runner_pid, slot)

    def finish_and_claim(
        self,
        results: Sequence[Outcome],
        limit: int,
        runner_pid: int,
        slot: int | None = None,
        unstarted: Sequence[int] = (),
    ) -> list[tuple[int, JobSpec]]:
        """Record finished jobs (see `finish`), give back claimed jobs whose payload never started (see
        `requeue`) and claim up to `limit` queued ones, in one transaction; the claimed come in id order."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            _record(conn, results, now)
            _requeue(conn, unstarted, now)
            if limit <= 0:
                return []
            rows = conn.execute(
                "UPDATE jobs SET status = 'running', started = ?, slot = ? WHERE id IN "
                "(SELECT id FROM jobs WHERE status = 'queued' AND cancel = 0 ORDER BY id LIMIT ?) "
                "RETURNING id, name, spec",
                (now, slot, limit),
            ).fetchall()
            conn.executemany(
                "INSERT INTO ledger (job_id, name, started, executor_pid) VALUES (?, ?, ?, ?)",
                [(r[0], r[1], now, runner_pid) for r in rows],
            )
        return sorted((r[0], JobSpec.from_json(json.loads(r[2]))) for r in rows)

    def cancel_requested(self, job_id: int) -> bool:
        """Whether someone asked to kill this job."""
        row = self._conn.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def finish(self, results: Sequence[Outcome], unstarted: Sequence[int] = ()) -> None:
        """Record how jobs ended, with their logs, and requeue `unstarted`, in one transaction."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            _record(conn, results, now)
            _requeue(conn, unstarted, now)

    def requeue(self, ids: Sequence[int]) -> None:
        """Put claimed jobs whose payload never started back in the queue (their ledger lines go: no payload
        started), unless a kill was asked for them (then they end as killed)."""
        self.finish([], ids)

    def running(self, runner_pid: int | None = None) -> list[QueueRow]:
        """Jobs marked running (only those claimed by the runner `runner_pid`, when given)."""
        if runner_pid is None:
            rows = self._conn.execute(f"{_ROW_SELECT} WHERE status = 'running'")
        else:
            rows = self._conn.execute(_RUNNING_BY, (runner_pid,))
        return [_row(r) for r in rows]

    def logs(self, job_id: int) -> tuple[str | None, str | None] | None:
        """(stdout, stderr) recorded when the job ended (None for a stream kept in a file); None if none."""
        row = self._conn.execute("SELECT stdout, stderr FROM logs WHERE job_id = ?", (job_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def active_count(self) -> int:
        """Jobs queued or running (one index range count)."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')"
        ).fetchone()[0]

    def ledger(self) -> list[tuple[int, str]]:
        """(job id, name) of every payload start, in order."""
        return list(self._conn.execute("SELECT job_id, name FROM ledger ORDER BY id"))


def _row(r: tuple[Any, ...]) -> QueueRow:
    return QueueRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7])


def _record(conn: sqlite3.Connection, results: Sequence[Outcome], now: str) -> None:
    # A job whose kill was requested before its end is recorded is killed, however its payload ended:
    # `gridpipe kill` has already told the user so and marked it killed in the job store.
    conn.executemany(
        "UPDATE jobs SET status = CASE cancel WHEN 1 THEN 'killed' ELSE ? END, exit_code = ?, "
        "reason = CASE cancel WHEN 1 THEN 'killed by the user' ELSE ? END, ended = ?, "
        "started = COALESCE(?, started) WHERE id = ?",
        [(r.status, r.exit_code, r.reason, now, r.started, r.job_id) for r in results],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO logs (job_id, stdout, stderr) VALUES (?, ?, ?)",
        [(r.job_id, r.stdout, r.stderr) for r in results],
    )


def _requeue(conn: sqlite3.Connection, ids: Sequence[int], now: str) -> None:
    conn.executemany(
        "UPDATE jobs SET status = CASE cancel WHEN 1 THEN 'killed' ELSE 'queued' END, "
        "reason = CASE cancel WHEN 1 THEN 'killed before it started' END, started = NULL, slot = NULL, "
        "ended = CASE cancel WHEN 1 THEN ? END WHERE id = ? AND status = 'running'",
        [(now, job_id) for job_id in ids],
    )
    conn.executemany("DELETE FROM ledger WHERE job_id = ?", [(job_id,) for job_id in ids])


def _setup(conn: sqlite3.Connection) -> None:
    """Create the queue's tables, or add what older queues lack."""
    conn.executescript(_SCHEMA)
    if "slot" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
        with transaction(conn):  # queues made before runners had slots
            if "slot" not in {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}:
                conn.execute("ALTER TABLE jobs ADD COLUMN slot INTEGER")
