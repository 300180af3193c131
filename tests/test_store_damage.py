"""A damaged or read-only job store: named with a fix, never silently started over, readable read-only."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis

from gridpipe.backends.local_queue import LocalQueue


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An analysis whose whole workflow ran to the end (4 grid jobs and the local summary)."""
    path = make_analysis(tmp_path_factory.mktemp("ana"), {"gamma": 4, "proton": 4})
    ran = gridpipe("run", "--poll-interval", "0.05", "-a", str(path), timeout=180)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return path


def _copy(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def _starts(path: Path) -> int:
    queue = LocalQueue(path / ".gridpipe" / "local")
    try:
        return len(queue.ledger())
    finally:
        queue.close()


def _damage(db: Path, how: str) -> None:
    if how == "empty":
        db.write_bytes(b"")
    elif how == "garbage":
        db.write_bytes(os.urandom(8192))
    elif how == "text":
        db.write_text("status: done\n")
    elif how == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    elif how == "header-only":
        db.write_bytes(db.read_bytes()[:100])


@pytest.mark.parametrize("how", ["empty", "garbage", "text", "truncated", "header-only"])
@pytest.mark.parametrize(
    "command", [["status"], ["status", "--json", "--no-refresh"], ["run"], ["submit", "--stage", "produce"]]
)
def test_a_damaged_job_store_is_named_and_never_started_over(finished, tmp_path, how, command):
    path = _copy(finished, tmp_path)
    db = path / ".gridpipe" / "state.db"
    for side in (db.with_name("state.db-wal"), db.with_name("state.db-shm")):
        side.unlink(missing_ok=True)
    if how == "truncated":  # a store large enough that a third of it cuts into its pages
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    _damage(db, how)
    damaged = db.read_bytes()
    starts = _starts(path)
    proc = gridpipe(*command, "-a", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert str(db) in proc.stderr
    assert "restore it from a backup" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert db.read_bytes() == damaged  # left exactly as found
    assert _starts(path) == starts  # nothing re-ran


def test_a_crash_while_creating_the_store_leaves_no_half_store(tmp_path):
    """The store is built under a temporary name and linked into place: only whole stores exist."""
    path = make_analysis(tmp_path, {"gamma": 1})
    db = path / ".gridpipe" / "state.db"
    db.unlink(missing_ok=True)
    code = (
        "import os, sqlite3, sys\n"
        "from gridpipe.core import sqlite as s\n"
        "def setup(conn):\n"
        "    conn.execute('CREATE TABLE t (x)')\n"
        "    os._exit(9)\n"
        "s.open_database(__import__('pathlib').Path(sys.argv[1]), setup)\n"
    )
    crashed = subprocess.run([sys.executable, "-c", code, str(db)], check=False)
    assert crashed.returncode == 9
    assert not db.exists()
    status = gridpipe("status", "--json", "-a", str(path))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["jobs"] == []


READ_COMMANDS = [
    ["status", "--no-refresh"],
    ["status"],
    ["status", "--json"],
    ["status", "--jobs"],
    ["submit", "--stage", "produce", "--dry-run"],
]


def _check_read_only(path: Path, run: list[str]) -> None:
    """Reading commands work on the read-only analysis; writing ones fail with one clear line."""
    for command in READ_COMMANDS:
        proc = subprocess.run([*run, *command, "-a", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "readonly database" not in proc.stderr
    checked = subprocess.run([*run, "check", "-a", str(path)], capture_output=True, text=True, timeout=120)
    assert "internal error" not in checked.stdout + checked.stderr
    assert "readonly" not in checked.stdout + checked.stderr
    listed = subprocess.run(
        [*run, "status", "--json", "-a", str(path)], capture_output=True, text=True, timeout=120
    )
    jobs = json.loads(listed.stdout)["jobs"]
    assert jobs and {j["status"] for j in jobs} == {"done"}
    logs = subprocess.run([*run, "logs", jobs[0]["name"], "-a", str(path)], capture_output=True, text=True)
    assert logs.returncode == 0, logs.stderr
    assert "stdout" in logs.stdout
    for command in (["run"], ["submit", "--stage", "produce"]):
        proc = subprocess.run([*run, *command, "-a", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0, (command, proc.stdout)
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 1:
            assert "cannot be written" in proc.stderr or "read-only" in proc.stderr, proc.stderr


@pytest.fixture
def readonly_mount(finished: Path) -> Iterator[Path]:
    """The finished analysis under a read-only bind mount (root cannot write there either)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a read-only bind mount needs root")
    parent = Path(tempfile.mkdtemp(prefix="gridpipe-ro-"))
    target = parent / finished.name
    target.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(finished), str(target)], capture_output=True)
    if mounted.returncode != 0:
        shutil.rmtree(parent)
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False)
        shutil.rmtree(parent)


def test_a_read_only_mount_can_be_read(readonly_mount):
    _check_read_only(readonly_mount, [sys.executable, "-m", "gridpipe"])


def test_another_users_analysis_can_be_read(finished, tmp_path):
    """As an unprivileged user (nobody) on an analysis owned by root."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    if subprocess.run([*as_nobody, "-c", "import gridpipe"], capture_output=True).returncode != 0:
        pytest.skip("the test interpreter is not readable by nobody (it lives in a private folder)")
    public = Path(tempfile.mkdtemp(prefix="gridpipe-other-"))
    try:
        os.chmod(public, 0o755)
        copy = public / "ana"
        shutil.copytree(finished, copy, symlinks=True)
        subprocess.run(["chmod", "-R", "a+rX,go-w", str(public)], check=True)
        _check_read_only(copy, [*as_nobody, "-m", "gridpipe"])
    finally:
        shutil.rmtree(public)
