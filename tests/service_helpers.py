"""Run the real background service for tests: its own state folder, the real CLI, and every process it
started reaped afterwards (the service, then the local executors of the analyses it drove)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine_helpers import wait_executor_gone

from gridpipe.client import Client
from gridpipe.service.statedir import StateDir, process_alive


@dataclass
class Service:
    """One user's service: its state folder and environment; `cli` runs `gridpipe` in that environment."""

    home: Path
    analyses: list[Path] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for the service (and so the local jobs it starts)."""

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "XDG_STATE_HOME": str(self.home),
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "200",
        }
        env.pop("GRIDPIPE", None)
        return {**env, **self.extra_env}

    @property
    def state(self) -> StateDir:
        return StateDir(self.home / "gridpipe")

    def cli(self, *args: str | os.PathLike[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gridpipe", *(str(a) for a in args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.home,
        )

    def start(self, *options: str) -> int:
        done = self.cli("service", "start", *options)
        assert done.returncode == 0, done.stdout + done.stderr
        return self.info()["pid"]

    def info(self) -> dict:
        return json.loads(self.state.info.read_text())

    def client(self) -> Client:
        return Client(state=self.state)

    def kill_9(self) -> None:
        pid = self.info()["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)

    def wait_state(self, path: Path, wanted: set[str], timeout: float = 120) -> dict:
        """Wait until the service reports the analysis in one of `wanted` states."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                got = client.analysis(path)
                if got["state"] in wanted:
                    return got
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path}: still {got['state']} ({got['message']})")
                time.sleep(0.1)


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not end")
        time.sleep(0.05)


@contextmanager
def running_service() -> Iterator[Service]:
    """A state folder with a short path (a Unix socket path must fit 108 bytes); afterwards the service is
    stopped (killed if it does not stop), and the executors of the analyses in `service.analyses` end."""
    home = Path(tempfile.mkdtemp(prefix="gps", dir="/tmp"))
    service = Service(home)
    try:
        yield service
    finally:
        info = service.state.read_info()
        if info is not None and process_alive(info.pid):
            service.cli("service", "stop", timeout=180)
            if process_alive(info.pid):
                os.kill(info.pid, signal.SIGKILL)
            wait_gone(info.pid)
        for path in service.analyses:
            if (path / ".gridpipe" / "local").is_dir():
                wait_executor_gone(path, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
