"""The SQLite side of the local storage: its file catalogue, a pool of connections and the query helpers.

The catalogue is created once in WAL mode under a file lock beside it, so that many job processes can start
and put at once. Connections are autocommit with a busy timeout and pooled for reuse; a write transaction is
taken at once (BEGIN IMMEDIATE), so writers queue instead of deadlocking. A forked child never uses nor
closes the connections it inherited (SQLite forbids both) and opens its own; IN lists go in chunks, as SQLite
limits the variables of one statement.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, SimpleQueue

from gridpipe.core.exceptions import StorageError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.sqlite import check_database_file, open_database, readonly_connection, transaction
from gridpipe.storage.local_files import os_errors

_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child inherited: never used nor closed there (SQLite forbids both)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    lfn TEXT PRIMARY KEY, size INTEGER NOT NULL, adler32 TEXT NOT NULL, stored TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replicas (lfn TEXT NOT NULL, se TEXT NOT NULL, PRIMARY KEY (lfn, se)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS external (lfn TEXT PRIMARY KEY, path TEXT NOT NULL) WITHOUT ROWID;
"""


class Catalogue:
    """The SQLite file catalogue at `path` (tables `files` and `replicas`), through pooled connections."""

    def __init__(self, path: Path, lock: Path, *, timeout: float) -> None:
        self.path = path
        self._timeout = timeout
        self._idle: SimpleQueue[sqlite3.Connection] = SimpleQueue()
        self._pid = os.getpid()
        self._readonly = False
        weakref.finalize(self, _close_idle, self._idle)
        self._create(lock)

    def _create(self, lock: Path) -> None:
        """Create the catalogue in WAL mode once, under the file `lock` (several processes may start at once);
        an existing catalogue this user cannot write is opened read-only."""
        if self.path.exists() and not (
            os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        ):
            check_database_file(self.path)
            self._readonly = True
            return
        with os_errors("local storage catalogue"), held_lock(lock, wait=True, mode=0o666):
            open_database(self.path, _setup).conn.close()

    def close(self) -> None:
        """Close the idle connections (new ones are opened if the catalogue is used again)."""
        _close_idle(self._idle)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """An idle pooled connection (autocommit, busy timeout) or a new one; pooled again when clean."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            _INHERITED.extend(_drain(self._idle))
        try:
            try:
                db = self._idle.get_nowait()
            except Empty:
                if self._readonly:  # read-only, also where its shared-memory file cannot be made
                    db = readonly_connection(self.path)
                else:
                    db = sqlite3.connect(
                        self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
                    )
                    db.execute("PRAGMA synchronous=NORMAL")
            try:
                yield db
            except BaseException:
                db.close()
                raise
            self._idle.put(db)
        except sqlite3.Error as exc:
            raise StorageError(f"local storage catalogue {self.path}: {exc}") from exc

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE): writers queue instead of deadlocking."""
        with self.connect() as db, transaction(db):
            yield db


def _drain(idle: SimpleQueue[sqlite3.Connection]) -> list[sqlite3.Connection]:
    """Take every connection out of `idle`."""
    taken = []
    while not idle.empty():
        taken.append(idle.get_nowait())
    return taken


def _close_idle(idle: SimpleQueue[sqlite3.Connection]) -> None:
    """Close every idle connection."""
    for db in _drain(idle):
        db.close()


def _setup(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
