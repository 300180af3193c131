"""The local backend's queue: a SQLite file shared by `gridpipe` commands and the detached executor."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from gridpipe.core.models import JobSpec
from gridpipe.core.sqlite import connect, select_in, transaction
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
"""
_ROW_SELECT = "SELECT id, name, status, exit_code, reason, cancel FROM jobs"


@dataclass(frozen=True)
class QueueRow:
    """One job of the local queue."""

    id: int
    name: str
    status: str
    exit_code: int | None
    reason: str | None
    cancel: bool


class LocalQueue:
    """Jobs of the local backend; `ledger` records every start of a payload (exactly-once evidence)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._conn = connect(root / "queue.db")
        self._conn.executescript(_SCHEMA)

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
        return [
            QueueRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]))
            for r in select_in(self._conn, _ROW_SELECT, "id", [int(i) for i in ids])
        ]

    def by_names(self, names: Sequence[str]) -> list[QueueRow]:
        """Rows whose name is one of `names`."""
        return [
            QueueRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]))
            for r in select_in(self._conn, _ROW_SELECT, "name", list(names))
        ]

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

    def count(self, status: str) -> int:
        """Number of jobs in a status."""
        return self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0]

    # ---- executor side ----------------------------------------------------------------------------
    def claim(self, limit: int, executor_pid: int) -> list[tuple[int, JobSpec]]:
        """Move up to `limit` queued jobs to running and write their ledger lines, atomically."""
        if limit <= 0:
            return []
        now = utcnow().isoformat()
        with self._tx() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = 'running', started = ? WHERE id IN "
                "(SELECT id FROM jobs WHERE status = 'queued' AND cancel = 0 ORDER BY id LIMIT ?) "
                "RETURNING id, name, spec",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "INSERT INTO ledger (job_id, name, started, executor_pid) VALUES (?, ?, ?, ?)",
                [(r[0], r[1], now, executor_pid) for r in rows],
            )
        return sorted((r[0], JobSpec.from_json(json.loads(r[2]))) for r in rows)

    def cancel_requested(self, job_id: int) -> bool:
        """Whether someone asked to kill this job."""
        row = self._conn.execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def finish(self, results: Sequence[tuple[int, str, int | None, str | None]]) -> None:
        """Record (id, status, exit code, reason) of finished jobs in one transaction."""
        now = utcnow().isoformat()
        with self._tx() as conn:
            conn.executemany(
                "UPDATE jobs SET status = ?, exit_code = ?, reason = ?, ended = ? WHERE id = ?",
                [(status, code, reason, now, job_id) for job_id, status, code, reason in results],
            )

    def running(self) -> list[QueueRow]:
        """Jobs marked running."""
        sql = f"{_ROW_SELECT} WHERE status = 'running'"
        return [QueueRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in self._conn.execute(sql)]

    def ledger(self) -> list[tuple[int, str]]:
        """(job id, name) of every payload start, in order."""
        return list(self._conn.execute("SELECT job_id, name FROM ledger ORDER BY id"))
