"""SQLite helpers shared by gridpipe's databases: WAL connections, write transactions, chunked `IN` queries."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHUNK = 500
"""Values per `IN (...)` query, well below SQLite's variable limit."""

BUSY_TIMEOUT_S = 60.0
"""How long a connection waits for other processes' locks before it gives up."""


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode that waits up to a minute for other writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    use_wal(conn, BUSY_TIMEOUT_S)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the database in WAL mode unless it already is.

    SQLite answers "database is locked" at once, without waiting, when the journal mode is read or
    changed while another process opens, converts or closes the same database; retry for `timeout`.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (BEGIN IMMEDIATE), rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`items` in slices of CHUNK."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def marks(chunk: Sequence[Any]) -> str:
    """Placeholders for an `IN (...)` list of `chunk`."""
    return ",".join("?" * len(chunk))


def select_in(
    conn: sqlite3.Connection, select: str, column: str, values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Rows of `select WHERE column IN (values)`, in chunked queries (`select` and `column` are code, not data)."""
    rows: list[tuple[Any, ...]] = []
    for chunk in chunks(list(values)):
        rows += conn.execute(f"{select} WHERE {column} IN ({marks(chunk)})", chunk).fetchall()
    return rows
