"""SQLite helpers shared by gridpipe's databases: WAL connections, write transactions, chunked `IN` queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHUNK = 500
"""Values per `IN (...)` query, well below SQLite's variable limit."""


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit mode that waits up to a minute for other writers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


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


def select_in(
    conn: sqlite3.Connection, select: str, column: str, values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Rows of `select WHERE column IN (values)`, in chunked queries (`select` and `column` are code, not data)."""
    rows: list[tuple[Any, ...]] = []
    for chunk in chunks(list(values)):
        marks = ",".join("?" * len(chunk))
        rows += conn.execute(f"{select} WHERE {column} IN ({marks})", chunk).fetchall()
    return rows
