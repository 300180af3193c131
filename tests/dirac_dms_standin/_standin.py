"""STAND-IN for DIRAC's data-management client commands, FOR GRIDPIPE'S TESTS ONLY. Not DIRAC.

DIRAC's data-management servers (file catalogue, storage elements) cannot run on this machine, so the
executable scripts beside this module play the `dirac-dms-*` commands gridpipe's `dirac` storage runs,
with those commands' command lines, exit codes and output formats (learned from DIRAC's sources), over a
local folder named by the environment variable GRIDPIPE_DMS_STANDIN_ROOT:

    <root>/catalogue.db        SQLite "file catalogue": size, Adler-32, GUID, replicas and folders per LFN
    <root>/se/<SE>/<lfn>       the copy of an LFN held by storage element <SE>
    <root>/invocations.jsonl   one JSON line per run: command name, argv, working folder

Options and arity are checked like DIRAC's Script/getopt does: unknown options exit 2 with
"Error when parsing command line arguments: ...", missing arguments exit 1. Other variables:
GRIDPIPE_DMS_STANDIN_SES (comma-separated storage elements that exist; unset: any name) and
GRIDPIPE_DMS_STANDIN_NO_VERIFY=1 (dirac-dms-get-file skips its size/checksum check, to test the caller's).
"""

from __future__ import annotations

import getopt
import json
import os
import shutil
import sqlite3
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT_ENV = "GRIDPIPE_DMS_STANDIN_ROOT"
SES_ENV = "GRIDPIPE_DMS_STANDIN_SES"
NO_VERIFY_ENV = "GRIDPIPE_DMS_STANDIN_NO_VERIFY"
NO_SUCH_FILE = "No such file or directory"
_BASIC_SHORT = "o:s:c:dh"
_BASIC_LONG = ["option=", "section=", "cert=", "debug", "cfg=", "license", "help"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (lfn TEXT PRIMARY KEY, file_id INTEGER UNIQUE, size INTEGER, checksum TEXT,
    guid TEXT UNIQUE, created TEXT);
CREATE TABLE IF NOT EXISTS replicas (lfn TEXT, se TEXT, PRIMARY KEY (lfn, se));
CREATE TABLE IF NOT EXISTS dirs (path TEXT PRIMARY KEY, dir_id INTEGER UNIQUE, created TEXT);
"""


def root() -> Path:
    """The stand-in's folder; exits like a DIRAC command without a configuration when it is not set."""
    value = os.environ.get(ROOT_ENV)
    if not value:
        print(f"ERROR:  stand-in for DIRAC: {ROOT_ENV} is not set (no file catalogue to talk to)")
        sys.exit(2)
    return Path(value)


def start(
    name: str, usage: str, *, short: str = "", long: tuple[str, ...] = (), args: tuple[int, int | None]
):
    """Log this run, parse options like DIRAC's LocalConfiguration; return ({option: value}, positional args)."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    record = {"command": name, "argv": sys.argv[1:], "cwd": os.getcwd()}
    with open(base / "invocations.jsonl", "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    try:
        opts, positional = getopt.gnu_getopt(sys.argv[1:], _BASIC_SHORT + short, _BASIC_LONG + list(long))
    except getopt.GetoptError as exc:
        print(f"Error when parsing command line arguments: {exc}")
        show_help(name, usage, 2)
    options = {key.lstrip("-"): value for key, value in opts}
    if "h" in options or "help" in options:
        show_help(name, usage, 0)
    if not os.environ.get("DIRAC_NO_CFG"):
        if any(arg.endswith(".cfg") for arg in positional):
            print("WARNING: Parsing of '.cfg' files as command line arguments is changing!")
        positional = [arg for arg in positional if not arg.endswith(".cfg")]
    least, most = args
    if len(positional) < least:
        print("Error when parsing command line arguments: not all mandatory arguments are defined.")
        show_help(name, usage, 1)
    if most is not None and len(positional) > most:
        show_help(name, usage, 1)
    return options, positional


def show_help(name: str, usage: str, code: int) -> None:
    """Print the usage like DIRAC's showHelp and exit with `code`."""
    print(f"{usage.strip()}\n\nUsage:\n  {name} [options] ...\n\n(stand-in for DIRAC, tests only)")
    sys.exit(code)


def lfn_list(args: list[str]) -> list[str]:
    """DIRAC's "LFN or file containing LFNs": one argument naming a local file is read as a list."""
    if len(args) == 1 and os.path.exists(args[0]):
        with open(args[0], encoding="utf-8") as fh:
            return [line.strip() for line in fh.read().splitlines() if line.strip()]
    return args


def se_valid(se: str) -> bool:
    """Whether storage element `se` exists (all names, unless GRIDPIPE_DMS_STANDIN_SES lists them)."""
    listed = os.environ.get(SES_ENV)
    return bool(se) and (listed is None or se in listed.split(","))


def se_file(se: str, lfn: str) -> Path:
    """Where storage element `se` keeps its copy of `lfn`."""
    return root() / "se" / se / lfn.lstrip("/")


def adler32_hex(path: Path) -> str:
    """Adler-32 of a file as DIRAC's fileAdler writes it (8 lowercase hex digits)."""
    value = 1
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            value = zlib.adler32(block, value)
    return f"{value & 0xFFFFFFFF:08x}"


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy `src` to `dest` through a temp name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def now() -> str:
    """The catalogue's clock (naive UTC, like DIRAC's database columns)."""
    return datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()


class Catalogue:
    """The stand-in file catalogue: files, replicas and folders in SQLite (WAL, many readers at once)."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(root() / "catalogue.db", timeout=60, isolation_level=None)
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def file(self, lfn: str) -> dict | None:
        """The row of file `lfn`, or None."""
        row = self.db.execute(
            "SELECT file_id, size, checksum, guid, created FROM files WHERE lfn = ?", (lfn,)
        )
        found = row.fetchone()
        return (
            dict(zip(("file_id", "size", "checksum", "guid", "created"), found, strict=True))
            if found
            else None
        )

    def folder(self, path: str) -> dict | None:
        """The row of folder `path`, or None."""
        found = self.db.execute("SELECT dir_id, created FROM dirs WHERE path = ?", (path,)).fetchone()
        return {"dir_id": found[0], "created": found[1]} if found else None

    def find(self, path: str) -> list[str]:
        """Every file below folder `path`, sorted."""
        prefix = path.rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT lfn FROM files WHERE lfn >= ? AND lfn < ?", (prefix, prefix[:-1] + "0")
        )
        return sorted(lfn for (lfn,) in rows)

    def replicas(self, lfn: str) -> list[str]:
        """Storage elements holding `lfn`, sorted."""
        return [se for (se,) in self.db.execute("SELECT se FROM replicas WHERE lfn = ? ORDER BY se", (lfn,))]

    def guid_owner(self, guid: str) -> str | None:
        """The LFN registered with `guid`, or None."""
        found = self.db.execute("SELECT lfn FROM files WHERE guid = ?", (guid,)).fetchone()
        return found[0] if found else None

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def register(self, lfn: str, size: int, checksum: str, guid: str, se: str) -> None:
        """Add file `lfn` with one replica, creating its folders (call inside `writing`)."""
        parts = lfn.split("/")[1:-1]
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            next_id = self.db.execute("SELECT COALESCE(MAX(dir_id), 1) + 1 FROM dirs").fetchone()[0]
            self.db.execute("INSERT OR IGNORE INTO dirs VALUES (?, ?, ?)", (path, next_id, now()))
        file_id = self.db.execute("SELECT COALESCE(MAX(file_id), 0) + 1 FROM files").fetchone()[0]
        self.db.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", (lfn, file_id, size, checksum, guid, now())
        )
        self.db.execute("INSERT INTO replicas VALUES (?, ?)", (lfn, se))

    def unregister(self, lfn: str) -> None:
        """Remove file `lfn` and its replicas from the catalogue and every storage element (inside `writing`)."""
        for se in self.replicas(lfn):
            se_file(se, lfn).unlink(missing_ok=True)
        self.db.execute("DELETE FROM replicas WHERE lfn = ?", (lfn,))
        self.db.execute("DELETE FROM files WHERE lfn = ?", (lfn,))


def check_lfns(lfns: list[str]) -> list[str]:
    """`lfns`, or exit 2 like a catalogue refusing a malformed LFN."""
    lfns = [lfn.replace("LFN:", "") for lfn in lfns]
    for lfn in lfns:
        if not lfn.startswith("/") or any(c.isspace() for c in lfn):
            print(f"ERROR:  Invalid LFN {lfn!r} (the stand-in file catalogue takes absolute LFNs only)")
            sys.exit(2)
    return lfns


def file_metadata(row: dict) -> dict:
    """What DIRAC's FileCatalog.getFileMetadata gives for a file."""
    created = datetime.fromisoformat(row["created"])
    return {
        "Checksum": row["checksum"],
        "ChecksumType": "Adler32",
        "CreationDate": created,
        "FileID": row["file_id"],
        "GID": 2,
        "GUID": row["guid"],
        "Mode": 509,
        "ModificationDate": created,
        "Owner": "standin",
        "OwnerGroup": "standin_user",
        "Size": row["size"],
        "Status": "AprioriGood",
        "UID": 2,
    }


def folder_metadata(row: dict) -> dict:
    """What DIRAC's FileCatalog.getDirectoryMetadata gives for a folder."""
    created = datetime.fromisoformat(row["created"])
    return {
        "CreationDate": created,
        "DirID": row["dir_id"],
        "GID": 2,
        "Mode": 509,
        "ModificationDate": created,
        "Owner": "standin",
        "OwnerGroup": "standin_user",
        "Status": 0,
        "UID": 2,
    }


def print_table(fields: list[str], records: list[tuple[str, ...]]) -> None:
    """Print `records` the way DIRAC's printTable does with numbering off and ' ' between columns."""
    widths = [max(len(f), *(len(r[i]) for r in records)) for i, f in enumerate(fields)]
    header = " ".join(f.ljust(w) for f, w in zip(fields, widths, strict=True)).rstrip()
    print(header)
    print("=" * (sum(widths[:-1]) + len(widths) - 1 + len(fields[-1])))
    for record in records:
        cells = (
            v.rjust(w) if v.replace(",", "").isdigit() else v.ljust(w)
            for v, w in zip(record, widths, strict=True)
        )
        print(" ".join(cells).rstrip())
