"""Slurm's accounting for the test cluster: a private MariaDB server and slurmdbd, started as root, no systemd.

MariaDB gets a fresh data folder (`mariadb-install-db`), a Unix socket for its set-up and a free loopback TCP
port for slurmdbd, which logs in as its own database user with a password (slurmdbd.conf is 0600 and owned
by the SlurmUser, as slurmdbd demands). slurmdbd finds slurmdbd.conf beside slurm.conf (`SLURM_CONF`'s
folder). Debian 12 ships MariaDB 10.11 and Slurm 22.05, Debian 13 MariaDB 11.8 and Slurm 24.x: only options
both accept are used.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NEEDED = ("slurmdbd", "sacct", "sacctmgr", "mariadbd", "mariadb-install-db", "mariadb")
DB_USER = "slurm"
DB_NAME = "slurm_acct_db"


def missing_reason() -> str | None:
    """Why accounting cannot be started here (None: it can)."""
    absent = [p for p in NEEDED if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if absent:
        return f"Slurm accounting is not installed ({', '.join(absent)} missing: apt-get install slurmdbd mariadb-server)"
    return None


def sbin(name: str) -> str:
    """The path of a daemon or tool (sbin is not always on PATH)."""
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class Accounting:
    """The files and ports of one cluster's accounting (database and slurmdbd)."""

    root: Path
    db_port: int
    dbd_port: int
    password: str = ""

    def __post_init__(self) -> None:
        self.password = self.password or secrets.token_hex(12)

    @property
    def datadir(self) -> Path:
        return self.root / "mariadb"

    @property
    def socket(self) -> Path:
        return self.root / "mariadb.sock"

    def install_db(self) -> None:
        """A fresh, empty MariaDB data folder (well under a second)."""
        argv = [
            "mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=root",
            "--auth-root-authentication-method=socket", "--skip-test-db",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")

    def mariadbd_argv(self) -> list[str]:
        """MariaDB in the foreground, small buffers, loopback only."""
        return [
            sbin("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", "--user=root",
            f"--socket={self.socket}", f"--port={self.db_port}", "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'mariadbd.pid'}", f"--log-error={self.root / 'log' / 'mariadbd.log'}",
            "--innodb-buffer-pool-size=32M", "--skip-name-resolve", "--innodb-lock-wait-timeout=900",
        ]  # fmt: skip

    def sql(self, statement: str) -> subprocess.CompletedProcess[str]:
        """Run SQL as MariaDB's root through the socket."""
        argv = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-e", statement]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    def create_user(self) -> None:
        """slurmdbd's database user (it reaches MariaDB over loopback TCP) and its database, created here:
        slurmdbd 24.11 creating the database itself dies on Debian 13's MariaDB client library 11.8
        (`_check_mysql_concat_is_sane`: error 5027, on the connection it created the database with)."""
        statement = (
            f"CREATE DATABASE IF NOT EXISTS {DB_NAME}; "
            f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{self.password}'; "
            f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'127.0.0.1';"
        )
        done = self.sql(statement)
        if done.returncode != 0:
            raise RuntimeError(f"cannot create slurmdbd's database user: {done.stderr.strip()}")

    def write_dbd_config(self, munge_socket: Path, slurm_user: str = "root") -> Path:
        """slurmdbd.conf beside slurm.conf: 0600, owned by the SlurmUser (slurmdbd refuses anything else)."""
        log = self.root / "log"
        lines = [
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge_socket}",
            "DbdHost=localhost",
            "DbdAddr=127.0.0.1",
            f"DbdPort={self.dbd_port}",
            f"SlurmUser={slurm_user}",
            f"PidFile={self.root / 'slurmdbd.pid'}",
            f"LogFile={log / 'slurmdbd.log'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={self.db_port}",
            f"StorageUser={DB_USER}",
            f"StoragePass={self.password}",
            f"StorageLoc={DB_NAME}",
        ]
        path = self.root / "slurmdbd.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)
        return path

    def slurm_conf_lines(self, munge_socket: Path) -> list[str]:
        """What slurm.conf says to send jobs to this slurmdbd; AccountingStoragePass names the munge socket
        clients use towards slurmdbd. Job comments are not stored (Slurm's default: AccountingStoreFlags
        without job_comment), so sacct's rows carry no marker and the backend knows its jobs by their folder."""
        return [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=localhost",
            f"AccountingStoragePort={self.dbd_port}",
            f"AccountingStoragePass={munge_socket}",
        ]
