"""Shared fixtures: run the real `gridpipe` command line as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

pytest.register_assert_rewrite("gridpipe.testing")  # the shipped conformance suites: detailed failures

# A test suite started with SIGINT ignored (a background job of a non-interactive shell: `.ci/run &`) would hand
# the ignored signal to every command it starts, and the Ctrl-C tests would see commands that cannot be
# interrupted. Handled here, the signal is back to its default in the commands these tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class CliResult(NamedTuple):
    """Exit code and output of one `gridpipe` run (unpacks as `rc, out, err`)."""

    rc: int
    stdout: str
    stderr: str


def gridpipe_command() -> list[str]:
    """The `gridpipe` console script of this interpreter, else `python -m gridpipe`."""
    script = Path(sys.executable).with_name("gridpipe")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gridpipe"]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: plain, wide, uncoloured output."""
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    env.pop("GRIDPIPE", None)
    return {**env, **(extra or {})}


RunCli = Callable[..., CliResult]


@pytest.fixture(scope="session")
def run_cli() -> RunCli:
    """Run `gridpipe ARGS...` in the directory `cwd`; return (rc, stdout, stderr)."""

    def run(
        *args: str | os.PathLike[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> CliResult:
        done = subprocess.run(
            [*gridpipe_command(), *(str(a) for a in args)],
            cwd=cwd,
            env=cli_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture(scope="session")
def diracx(tmp_path_factory: pytest.TempPathFactory):
    """A real DiracX 0.7.0 server on 127.0.0.1 (SQLite + moto S3) for the whole session; see diracx_server.py."""
    pytest.importorskip("diracx.testing")
    pytest.importorskip("diracx.api")
    pytest.importorskip("moto")
    from diracx_server import running_server

    with running_server(tmp_path_factory.mktemp("diracx")) as server:
        yield server


@pytest.fixture(autouse=True)
def _reap_background_runs():
    """After each test, stop and reap the `gridpipe run` processes it started in the background."""
    yield
    from engine_helpers import reap_runs

    reap_runs()


collect_ignore = [
    "example_plugin"
]  # a site's own package: its suite runs through test_plugins with it installed


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node Slurm cluster (munged, slurmctld, slurmd as root) for the whole session; its
    SLURM_CONF is set in this process's environment so the backend and `gridpipe` subprocesses find it.
    Skipped only when Slurm is not installed; see slurm_cluster.py."""
    from slurm_cluster import missing_reason, running_cluster

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    old = os.environ.get("SLURM_CONF")
    with running_cluster() as cluster:
        os.environ["SLURM_CONF"] = str(cluster.conf)
        try:
            yield cluster
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old


@pytest.fixture(scope="session")
def htcondor_pool():
    """A real one-machine HTCondor pool (condor_master as root; on Debian 12 from a trixie chroot) for the
    whole session; its CONDOR_CONFIG is set in this process's environment. Skipped when HTCondor is not
    installed, except where the pool is required (GRIDPIPE_REQUIRE_HTCONDOR=1, set by .ci/run): there it
    fails. See htcondor_pool.py."""
    from htcondor_pool import missing_reason, running_pool

    reason = missing_reason()
    if reason is not None:
        if os.environ.get("GRIDPIPE_REQUIRE_HTCONDOR") == "1":
            pytest.fail(f"the HTCondor pool is required here but cannot be started: {reason}")
        pytest.skip(reason)
    with running_pool() as pool:
        yield pool


@pytest.fixture(scope="session")
def _slurm_accounting_cluster():
    """A second one-node cluster with accounting (slurmdbd + MariaDB), finished jobs leaving squeue after
    about 10 s (MinJobAge=2 plus slurmctld's purge interval) and memory limits enforced without cgroups."""
    from slurm_accounting import missing_reason as accounting_missing
    from slurm_cluster import missing_reason, running_cluster

    reason = missing_reason() or accounting_missing()
    if reason is not None:
        pytest.skip(reason)
    with running_cluster(accounting=True, min_job_age=2, memory_limits=True) as cluster:
        yield cluster


@pytest.fixture
def slurm_accounting(_slurm_accounting_cluster, monkeypatch):
    """The accounting cluster, its SLURM_CONF set for this test (the backend and `gridpipe` runs use it)."""
    monkeypatch.setenv("SLURM_CONF", str(_slurm_accounting_cluster.conf))
    return _slurm_accounting_cluster
