"""Schema of the job archive, versioned with PRAGMA user_version and applied as ordered migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gridpipe.core.exceptions import DatabaseFileError

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        stage TEXT NOT NULL,
        unit TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        backend TEXT,
        backend_id TEXT,
        site TEXT,
        reason TEXT,
        flagged INTEGER NOT NULL DEFAULT 0,
        updated TEXT NOT NULL
    );
    CREATE INDEX jobs_by_stage ON jobs (stage, unit, status);
    CREATE INDEX jobs_by_status ON jobs (status);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs (id),
        number INTEGER NOT NULL,
        backend TEXT NOT NULL,
        backend_id TEXT,
        status TEXT NOT NULL,
        site TEXT,
        exit_code INTEGER,
        reason TEXT,
        submitted TEXT NOT NULL,
        ended TEXT,
        UNIQUE (job_id, number)
    );
    CREATE INDEX attempts_by_backend_id ON attempts (backend, backend_id);
    CREATE TABLE files (
        lfn TEXT PRIMARY KEY,
        job_id INTEGER REFERENCES jobs (id),
        kind TEXT NOT NULL,
        size INTEGER,
        adler32 TEXT,
        registered TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        job_id INTEGER,
        kind TEXT NOT NULL,
        old TEXT,
        new TEXT,
        detail TEXT
    );
    CREATE INDEX events_by_job ON events (job_id);
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TABLE stage_state (
        stage TEXT NOT NULL,
        unit TEXT NOT NULL,
        state TEXT NOT NULL,
        detail TEXT,
        updated TEXT NOT NULL,
        PRIMARY KEY (stage, unit)
    );
    """,
    # version 2: status refreshes look jobs up by their backend id
    """
    CREATE INDEX jobs_by_backend_id ON jobs (backend_id);
    """,
    # version 3: jobs per (stage, unit, status), kept by JobStore's writes (one grouped statement per batch),
    # so that `status` and every cycle of `run` read a few rows instead of counting 100,000 jobs. Only JobStore
    # writes jobs; a deletion (none is made) is followed by a trigger. (A trigger per insert or update would
    # double what writing a job costs.)
    """
    CREATE TABLE job_counts (
        stage TEXT NOT NULL,
        unit TEXT NOT NULL,
        status TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (stage, unit, status)
    ) WITHOUT ROWID;
    INSERT INTO job_counts (stage, unit, status, n)
        SELECT stage, unit, status, COUNT(*) FROM jobs GROUP BY stage, unit, status;
    CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN UPDATE job_counts SET n = n - 1 WHERE stage = OLD.stage AND unit = OLD.unit AND status = OLD.status; END;
    """,
    # version 4: when an attempt began to run; done attempts looked up by their end (throughput)
    """
    ALTER TABLE attempts ADD COLUMN started TEXT;
    CREATE INDEX attempts_by_status_ended ON attempts (status, ended);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to SCHEMA_VERSION; refuse a database newer than this gridpipe."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise DatabaseFileError(
            _file_of(conn),
            f"job store schema {current} is newer than this gridpipe understands ({SCHEMA_VERSION})",
            "upgrade gridpipe (pip install -U gridpipe)",
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != version:
                conn.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[version].split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def check_version(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, for a store opened read-only, a schema this gridpipe would have to upgrade first."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current != SCHEMA_VERSION:
        raise DatabaseFileError(
            path,
            f"job store schema {current} differs from this gridpipe's ({SCHEMA_VERSION}) and the store is read-only",
            "open it once with write access (or with the gridpipe version that wrote it)",
        )


def _file_of(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2]) or "the job store"
