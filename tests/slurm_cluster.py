"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd started as root, no systemd.

Recipe: /work/shared/batch-loopback.md (Debian 12's Slurm 22.05; Debian 13's 24.x). Everything lives in one
temporary folder (config, state, spool, logs, munge socket); the ports are free ones chosen at start, so two
clusters (two test sessions) can run side by side. Clients find it through `SLURM_CONF`.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from slurm_accounting import Accounting, sbin

NEEDED = ("sbatch", "squeue", "scancel", "slurmctld", "slurmd", "munged")
MUNGE_KEY = Path("/etc/munge/munge.key")
START_TIMEOUT = 60.0


def missing_reason() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    absent = [p for p in NEEDED if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if "sbatch" in absent:
        return "Slurm is not installed (apt-get install slurm-wlm munge)"
    if absent:
        return f"Slurm daemons missing: {', '.join(absent)}"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    if not MUNGE_KEY.exists():
        return f"{MUNGE_KEY} is missing (reinstall munge)"
    return None


def slurm_version() -> tuple[int, int]:
    """(major, minor) of the installed Slurm, e.g. (22, 5) on Debian 12, (24, 11) on Debian 13. Asked of
    slurmd: the clients (`sbatch --version`) look for a configuration first and fail where there is none."""
    out = subprocess.run([sbin("slurmd"), "-V"], capture_output=True, text=True, check=False, timeout=30)
    found = re.search(r"(\d+)\.(\d+)", out.stdout)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def debian_version() -> str:
    """The Debian release this machine runs (for messages), '' elsewhere."""
    try:
        return Path("/etc/debian_version").read_text().strip()
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlurmCluster:
    """A running cluster: its folder, its config file and the daemons' processes."""

    root: Path
    cpus: int = 8
    min_job_age: int = 300
    accounting: Accounting | None = None
    """slurmdbd and its MariaDB (None: accounting_storage/none, `sacct` says accounting is disabled)."""
    memory_limits: bool = False
    """Sample the jobs' memory every second and kill those over their --mem (OUT_OF_MEMORY)."""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The cluster's name (accounting keeps the jobs of each cluster apart)."""
        return "gridpipe-acct" if self.accounting else "gridpipe-test"

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client needs in its environment to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def write_config(self) -> None:
        """slurm.conf with options both 22.05 and 24.x accept (cgroup.conf only where it is read)."""
        r = self.root
        for sub in ("state", "spool", "log"):
            (r / sub).mkdir(exist_ok=True)
        lines = [
            f"ClusterName={self.name}",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory" if self.memory_limits else "SelectTypeParameters=CR_Core",
            "SchedulerParameters=sched_min_interval=0,bf_interval=1",
            *(
                self.accounting.slurm_conf_lines(self.munge_socket)
                if self.accounting
                else ["AccountingStorageType=accounting_storage/none"]
            ),
            *(self._memory_lines() if self.memory_limits else []),
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={r / 'log' / 'jobcomp.txt'}",
            f"MinJobAge={self.min_job_age}",
            "KillWait=2",
            "InactiveLimit=0",
            "SlurmdParameters=config_overrides",
            f"NodeName=localhost CPUs={self.cpus} RealMemory=4000 State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        if slurm_version() >= (23, 0):
            (r / "cgroup.conf").write_text("CgroupPlugin=disabled\n")
        if self.accounting:
            self.accounting.write_dbd_config(self.munge_socket)

    @staticmethod
    def _memory_lines() -> list[str]:
        """Memory enforcement without cgroups (task/none): jobacct_gather/linux samples each step's memory
        every second and OverMemoryKill kills a step over its --mem; memory becomes a consumable resource."""
        return [
            "JobAcctGatherType=jobacct_gather/linux",
            "JobAcctGatherFrequency=task=1",
            "JobAcctGatherParams=OverMemoryKill",
            "DefMemPerCPU=100",
        ]

    # ---- daemons --------------------------------------------------------------------------------
    def start_munge(self) -> None:
        folder = self.munge_socket.parent
        folder.mkdir(exist_ok=True)
        munge = pwd.getpwnam("munge")
        os.chown(folder, munge.pw_uid, munge.pw_gid)
        folder.chmod(0o755)
        argv = [
            "runuser",
            "-u",
            "munge",
            "--",
            sbin("munged"),
            "--foreground",
            f"--socket={self.munge_socket}",
            f"--pid-file={folder / 'munged.pid'}",
            f"--log-file={folder / 'munged.log'}",
            f"--seed-file={folder / 'munged.seed'}",
            f"--key-file={MUNGE_KEY}",
        ]
        self._start("munged", argv)
        self._wait(lambda: self.munge_socket.exists(), "munged to open its socket")

    def start_accounting(self) -> None:
        """MariaDB, then slurmdbd, then this cluster registered in it (before slurmctld starts)."""
        acct = self.accounting
        assert acct is not None
        acct.install_db()
        self._start("mariadbd", acct.mariadbd_argv())
        self._wait(lambda: acct.socket.exists() and acct.sql("SELECT 1").returncode == 0, "MariaDB")
        acct.create_user()
        self.start_dbd()
        added = self.client("sacctmgr", "-i", "add", "cluster", self.name)
        if added.returncode != 0 and "already exists" not in added.stdout + added.stderr:
            raise RuntimeError(f"sacctmgr add cluster failed: {added.stdout}{added.stderr}")

    def start_dbd(self) -> None:
        """Start slurmdbd (again); slurmctld sends it what it queued meanwhile."""
        self._start("slurmdbd", [sbin("slurmdbd"), "-D"])
        self._wait(lambda: self.client("sacctmgr", "-n", "list", "cluster").returncode == 0, "slurmdbd")

    def stop_dbd(self) -> None:
        """Stop slurmdbd (sacct then fails with 'Connection refused'; slurmctld queues its records)."""
        self._stop("slurmdbd")

    def start_controller(self) -> None:
        """Start slurmctld (again): it recovers its jobs from its state folder."""
        self._start("slurmctld", [sbin("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait(self._controller_answers, "slurmctld to answer")

    def stop_controller(self) -> None:
        """Stop slurmctld (jobs keep running on slurmd; clients get 'Unable to contact slurm controller')."""
        self._stop("slurmctld")

    def start_node(self) -> None:
        self._start("slurmd", [sbin("slurmd"), "-D", "-f", str(self.conf), "-N", "localhost"])
        self._wait(self._node_idle, "the node to be idle")

    def _start(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        try:
            self.procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **self.env}
            )
        finally:
            log.close()

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():  # type: ignore[operator]
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited ({proc.returncode}) while waiting for {what}: {self.logs()}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")
            time.sleep(0.2)

    def client(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **self.env},
        )

    def _controller_answers(self) -> bool:
        return self.client("scontrol", "ping", timeout=15).returncode == 0 and "UP" in (
            self.client("scontrol", "ping", timeout=15).stdout
        )

    def _node_idle(self) -> bool:
        out = self.client("sinfo", "-h", "-N", "-o", "%T", timeout=15).stdout.split()
        return bool(out) and out[0].rstrip("*~#") == "idle"

    def logs(self) -> str:
        """The tails of the daemons' logs (for failure messages)."""
        tails = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")[-1500:]
            tails.append(f"--- {path.name}\n{text}")
        return "\n".join(tails)

    def stop(self) -> None:
        """Stop everything, the node first."""
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name)


@contextmanager
def running_cluster(
    cpus: int = 8, *, accounting: bool = False, min_job_age: int = 300, memory_limits: bool = False
) -> Iterator[SlurmCluster]:
    """A fresh cluster for the duration of the block; stopped and removed afterwards. `accounting`: with
    slurmdbd and MariaDB (sacct answers); `min_job_age`: seconds finished jobs stay in squeue."""
    root = Path(tempfile.mkdtemp(prefix="gridpipe-slurm-"))
    root.chmod(0o755)
    acct = Accounting(root, _free_port(), _free_port()) if accounting else None
    cluster = SlurmCluster(root, cpus, min_job_age, acct, memory_limits)
    try:
        cluster.write_config()
        cluster.start_munge()
        if acct is not None:
            cluster.start_accounting()
        cluster.start_controller()
        cluster.start_node()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
