"""SQLite helpers shared by gridpipe's databases: WAL connections, write transactions, chunked `IN` queries."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridpipe.core.exceptions import DatabaseFileError, DiskFullError, ReadOnlyError

CHUNK = 500
"""Values per `IN (...)` query, well below SQLite's variable limit."""

BUSY_TIMEOUT_S = 60.0
"""How long a connection waits for other processes' locks before it gives up."""


@dataclass
class Database:
    """An open gridpipe database: its connection and whether this process may only read it."""

    conn: sqlite3.Connection
    path: Path
    readonly: bool


def open_database(path: Path, setup: Callable[[sqlite3.Connection], None]) -> Database:
    """Open the database at `path`, created complete or not at all (`setup` makes its schema).

    A new database is built under a temporary name and linked into place, so a file under the real name
    is always a whole gridpipe database: an empty, truncated or foreign file is refused with its name and
    a fix, never taken for a new database. Where this user cannot write, the database is opened read-only
    (and a missing one is an empty in-memory one), so reading commands work on another user's analysis.
    """
    if not path.exists():
        try:
            if not _writable(path.parent if path.parent.exists() else _existing_parent(path)):
                raise ReadOnlyError(path)
            _create(path, setup)
        except (ReadOnlyError, DiskFullError):  # nothing recorded yet, and nothing can be: an empty view
            conn = _connection(":memory:", uri=False)
            setup(conn)
            return Database(conn, path, readonly=True)
    check_database_file(path)
    readonly = not (_writable(path) and _writable(path.parent))
    try:
        if readonly:
            conn = readonly_connection(path)
            check_connection(conn, path)
        else:
            try:
                conn = _connection(str(path), uri=False)
                try:
                    check_connection(conn, path)
                    use_wal(conn, BUSY_TIMEOUT_S)
                    setup(conn)
                except BaseException:
                    conn.close()  # a refused database (newer, damaged) leaves no connection behind
                    raise
            except sqlite3.OperationalError as exc:
                if not isinstance(database_error(exc, path), DiskFullError):
                    raise
                # a full disk: what is recorded can still be read; any write says the disk is full
                conn, readonly = readonly_connection(path), True
                check_connection(conn, path)
    except sqlite3.DatabaseError as exc:
        raise database_error(exc, path) from None
    return Database(conn, path, readonly)


def connect(path: Path) -> sqlite3.Connection:
    """A WAL-mode read-write connection (autocommit, waits up to a minute for other writers)."""
    return open_database(path, lambda conn: None).conn


_RESTORE = "restore it from a backup, or move it away to start a new one (what it recorded would be lost)"


def check_database_file(path: Path) -> None:
    """Refuse an empty file (SQLite would silently take it for a new database), naming it.

    Only `stat` is used here: opening and closing a database file in a process that has SQLite
    connections to it would drop their POSIX locks, and other processes could then reset its WAL.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DatabaseFileError(path, f"cannot be read ({exc.strerror})", "check its permissions") from None
    if size == 0:
        raise DatabaseFileError(path, "is empty (0 bytes): the file was truncated or replaced", _RESTORE)


def check_connection(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, through an open connection, a file that is foreign, damaged or truncated, naming it."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return  # pages may live in the WAL: the file alone says nothing about its length
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DatabaseFileError(path, f"is not a whole SQLite database ({exc})", _RESTORE) from None
    size = path.stat().st_size
    if size < pages * page_size:
        raise DatabaseFileError(path, f"is truncated ({size} bytes of {pages * page_size})", _RESTORE)


def database_error(exc: sqlite3.Error, path: Path | str) -> Exception:
    """The gridpipe error for an SQLite failure on the database at `path` (the exception itself if none)."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return ReadOnlyError(path)
    if "disk is full" in text or getattr(exc, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
        return DiskFullError(path)
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
        return DatabaseFileError(
            path,
            "is damaged (SQLite: " + str(exc) + ")",
            _RESTORE,
        )
    return exc


def _connection(target: str, *, uri: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=uri
    )
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def readonly_connection(path: Path) -> sqlite3.Connection:
    """A read-only connection; a WAL database whose shared-memory file cannot be made is read as it was
    last checkpointed (what a clean close leaves)."""
    target = "file:" + _uri_path(path)
    try:
        conn = _connection(target + "?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        return _connection(target + "?mode=ro&immutable=1", uri=True)


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _create(path: Path, setup: Callable[[sqlite3.Connection], None]) -> None:
    """Build the database under a temporary name, then link it into place unless another process (or thread:
    the service opens an analysis's store from its API and its drive at once) won."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}.new")
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
        try:
            conn = _connection(str(tmp), uri=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                setup(conn)
            finally:
                conn.close()
            try:
                os.link(tmp, path)  # never replaces a database another process made meanwhile
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    except sqlite3.Error as exc:
        raise database_error(exc, path) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(path) from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ReadOnlyError(path) from None
        raise DatabaseFileError(path, f"cannot be created ({exc.strerror})", "check the folder") from None


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
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        mapped = database_error(exc, _file_of(conn))
        if mapped is exc:
            raise
        raise mapped from None


def _file_of(conn: sqlite3.Connection) -> str:
    """The file of the connection's main database."""
    try:
        return str(conn.execute("PRAGMA database_list").fetchone()[2]) or "(in memory)"
    except sqlite3.Error:
        return "(unknown database)"


def chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """`items` in slices of CHUNK."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def marks(chunk: Sequence[Any]) -> str:
    """Placeholders for an `IN (...)` list of `chunk`."""
    return ",".join("?" * len(chunk))


def select_in(
    conn: sqlite3.Connection, select: str, column: str, values: Sequence[Any], tail: str = ""
) -> list[tuple[Any, ...]]:
    """Rows of `select WHERE column IN (values) tail`, in chunked queries (`select`, `column` and `tail`,
    e.g. a GROUP BY, are code, not data)."""
    rows: list[tuple[Any, ...]] = []
    for chunk in chunks(list(values)):
        rows += conn.execute(f"{select} WHERE {column} IN ({marks(chunk)}) {tail}", chunk).fetchall()
    return rows
