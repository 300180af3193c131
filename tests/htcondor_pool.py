"""A real one-machine HTCondor pool for the tests: condor_master (collector, negotiator, schedd, startd) as root.

Recipe: /work/shared/batch-loopback.md. Debian 13 and later install the daemons natively (`minicondor`);
Debian 12's glibc is too old for them, so there they run from a Debian 13 chroot that `.ci/htcondor-pool`
makes once with debootstrap and caches (CHROOT below). Either way:

- everything of one pool lives in one temporary folder (config, spool, logs, execute, tokens); the pool
  listens on a free port of 127.0.0.1 (shared port), so two pools (two test sessions) can run side by side;
- root cannot own jobs: clients (this process and `gridpipe` subprocesses) authenticate with an IDTOKENS
  token of an ordinary user (USER), whose jobs run as that user; analyses the jobs work on are made under
  `workdir()` and handed to that user (`chown`), and in-process tests act as that user (`as_user`);
- in the chroot, whatever a job executes or reads is bind-mounted at the same path: the pool's folder, this
  interpreter's installation, the virtual environment and gridpipe's sources (read-only but the first).
  Clients find the pool through `CONDOR_CONFIG` (`env`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import gridpipe

CHROOT = Path(os.environ.get("GRIDPIPE_HTCONDOR_CHROOT", "/var/cache/gridpipe-ci/trixie-htcondor"))
USER = "gridpipe-ci"
START_TIMEOUT = 90.0
SETUP = "run .ci/htcondor-pool as root (Debian 13: apt-get install minicondor; Debian 12: a trixie chroot)"


def native() -> bool:
    """Whether HTCondor's daemons are installed on this machine itself (Debian 13 and later)."""
    return Path("/usr/sbin/condor_master").exists()


def missing_reason() -> str | None:
    """Why no pool can be started here (None: it can)."""
    if os.geteuid() != 0:
        return "starting HTCondor's daemons needs root"
    if not native() and not (CHROOT / "usr" / "sbin" / "condor_master").exists():
        return f"HTCondor's daemons are not installed here nor in {CHROOT}: {SETUP}"
    try:
        import htcondor2  # noqa: F401
    except ImportError:
        return "the htcondor Python bindings are missing (pip install 'gridpipe[htcondor]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str], timeout: float = 60, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def ensure_user() -> pwd.struct_passwd:
    """The ordinary user jobs run as (made here, and in the chroot with the same uid)."""
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER])
        user = pwd.getpwnam(USER)
    if not native():
        passwd = (CHROOT / "etc" / "passwd").read_text()
        if not any(line.startswith(f"{USER}:") for line in passwd.splitlines()):
            _run(["chroot", str(CHROOT), "groupadd", "-o", "-g", str(user.pw_gid), USER])
            _run(["chroot", str(CHROOT), "useradd", "-o", "-M", "-u", str(user.pw_uid), "-g", str(user.pw_gid),
                  "-s", "/usr/sbin/nologin", USER])  # fmt: skip
    return user


def job_visible_paths() -> list[Path]:
    """What jobs need to see at the same path: this interpreter, its virtual environment, gridpipe."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    paths.add(Path(gridpipe.__file__).resolve().parents[1])
    ordered = sorted(paths, key=lambda p: len(p.parts))
    return [p for i, p in enumerate(ordered) if not any(p.is_relative_to(q) for q in ordered[:i])]


def user_cannot_run_jobs(user: pwd.struct_passwd) -> str | None:
    """Natively, jobs run as `user` on this machine itself: why it cannot start this interpreter and import
    gridpipe (e.g. the checkout or the virtual environment lies under /root, mode 700), None if it can."""
    if not native():
        return None  # in the chroot, what jobs need is bind-mounted at reachable paths (HTCondorPool.mount)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import gridpipe"], capture_output=True, text=True, timeout=60, check=False,
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
        )  # fmt: skip
    except OSError as exc:  # the interpreter itself is out of reach
        why = str(exc)
    else:
        if done.returncode == 0:
            return None
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    folders = " ".join(str(p) for p in job_visible_paths())
    return (
        f"jobs run as {USER}, which cannot run {sys.executable} and import gridpipe ({why}): give it search "
        f"permission on the folders above {folders} (e.g. setfacl -m u:{USER}:x /root, as .ci/run does)"
    )


@dataclass
class HTCondorPool:
    """A running pool: its folder, its configs and condor_master's process."""

    root: Path
    user: pwd.struct_passwd
    port: int = field(default_factory=_free_port)
    master: subprocess.Popen[bytes] | None = None
    mounts: list[Path] = field(default_factory=list)

    @property
    def chroot(self) -> Path | None:
        return None if native() else CHROOT

    @property
    def daemon_config(self) -> Path:
        return self.root / "condor_config"

    @property
    def client_config(self) -> Path:
        return self.root / "client_config"

    @property
    def env(self) -> dict[str, str]:
        """What a client (root: this process) needs in its environment to talk to this pool."""
        return {"CONDOR_CONFIG": str(self.client_config)}

    @property
    def user_env(self) -> dict[str, str]:
        """The same for a client running as the ordinary user (its own copy of the token)."""
        return {**self.env, "_CONDOR_SEC_TOKEN_DIRECTORY": str(self.root / "client-tokens")}

    def condor_ids(self) -> tuple[int, int]:
        """uid and gid of the `condor` user the daemons work as (in the chroot's passwd there)."""
        passwd = Path("/etc/passwd") if self.chroot is None else self.chroot / "etc" / "passwd"
        for line in passwd.read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "condor":
                return int(fields[2]), int(fields[3])
        raise RuntimeError(f"no condor user in {passwd} (is HTCondor installed?)")

    # ---- configuration ---------------------------------------------------------------------------
    def write_configs(self) -> None:
        r = self.root
        for sub in (
            "log",
            "spool",
            "execute",
            "lock",
            "run",
            "passwords.d",
            "tokens.d",
            "client-tokens",
            "root-tokens",
            "work",
        ):
            (r / sub).mkdir(exist_ok=True)
        condor = self.condor_ids()
        for sub in ("log", "spool", "execute", "lock", "run"):
            os.chown(r / sub, *condor)
        (r / "execute").chmod(0o755)
        (r / "work").chmod(0o755)
        (r / "passwords.d").chmod(0o700)
        (r / "tokens.d").chmod(0o700)
        common = [
            "CONDOR_HOST = 127.0.0.1",
            f"COLLECTOR_HOST = 127.0.0.1:{self.port}",
            "ENABLE_IPV6 = false",
            "TRUST_DOMAIN = gridpipe-test",
            "UID_DOMAIN = gridpipe",  # the token identity is USER@gridpipe
            f"SCHEDD_ADDRESS_FILE = {r / 'spool' / '.schedd_address'}",
        ]
        daemon = [
            "use ROLE: CentralManager",
            "use ROLE: Submit",
            "use ROLE: Execute",
            "use security:recommended_v9_0",
            "RELEASE_DIR = /usr",
            "BIN = /usr/bin",
            "SBIN = /usr/sbin",
            "LIB = /usr/lib/condor",
            "LIBEXEC = /usr/libexec/condor",
            "SHARE = /usr/share/condor",
            "ETC = /etc/condor",
            f"LOCAL_DIR = {r}",
            "LOCAL_CONFIG_FILE =",
            "LOCAL_CONFIG_DIR =",
            "REQUIRE_LOCAL_CONFIG_FILE = false",
            *common,
            "NETWORK_INTERFACE = 127.0.0.1",
            "BIND_ALL_INTERFACES = false",
            "USE_SHARED_PORT = true",
            f"SHARED_PORT_PORT = {self.port}",
            f"LOG = {r / 'log'}",
            f"SPOOL = {r / 'spool'}",
            f"EXECUTE = {r / 'execute'}",
            f"LOCK = {r / 'lock'}",
            f"RUN = {r / 'run'}",
            f"SEC_PASSWORD_DIRECTORY = {r / 'passwords.d'}",
            f"SEC_TOKEN_SYSTEM_DIRECTORY = {r / 'tokens.d'}",
            f"SEC_TOKEN_DIRECTORY = {r / 'tokens.d'}",
            f"SEC_TOKEN_POOL_SIGNING_KEY_FILE = {r / 'passwords.d' / 'POOL'}",
            "SEC_DEFAULT_AUTHENTICATION = REQUIRED",
            "SEC_DEFAULT_INTEGRITY = REQUIRED",
            "ALLOW_DAEMON = condor@$(UID_DOMAIN) root@$(UID_DOMAIN)",
            "ALLOW_NEGOTIATOR = condor@$(UID_DOMAIN) root@$(UID_DOMAIN)",
            "ALLOW_ADMINISTRATOR = root@$(UID_DOMAIN) condor@$(UID_DOMAIN)",
            "ALLOW_WRITE = *",
            "ALLOW_READ = *",
            # what a chroot (no mount namespace games, no systemd) needs; harmless natively
            "MOUNT_UNDER_SCRATCH =",
            "MOUNT_PRIVATE_DEV_SHM = false",
            "USE_PID_NAMESPACES = false",
            # quick for a one-machine pool
            "NUM_CPUS = 4",
            "SCHEDD_INTERVAL = 2",
            "NEGOTIATOR_INTERVAL = 1",
            "NEGOTIATOR_CYCLE_DELAY = 1",
            "NEGOTIATOR_MIN_INTERVAL = 1",
            "STARTER_UPDATE_INTERVAL = 2",
            "SHADOW_QUEUE_UPDATE_INTERVAL = 2",
            "UPDATE_INTERVAL = 2",
            "PERIODIC_EXPR_INTERVAL = 5",
            "RUNBENCHMARKS = 0",
            "JOB_START_DELAY = 0",
            "JOB_START_COUNT = 100",
            "SCHEDD_MIN_INTERVAL = 0",
            "CLAIM_WORKLIFE = 600",
            "STARTD_CRON_JOBLIST =",
        ]
        self.daemon_config.write_text("\n".join(daemon) + "\n")
        client = [
            *common,
            "SEC_CLIENT_AUTHENTICATION_METHODS = IDTOKENS",
            f"SEC_TOKEN_DIRECTORY = {r / 'root-tokens'}",  # root's clients want a root-owned token
        ]
        self.client_config.write_text("\n".join(client) + "\n")
        for path in (self.daemon_config, self.client_config):
            path.chmod(0o644)

    # ---- the chroot ------------------------------------------------------------------------------
    def mount(self) -> None:
        """Bind the pool's folder and what jobs execute into the chroot, at the same paths."""
        if self.chroot is None:
            return
        self._mount(["-t", "proc", "proc"], self.chroot / "proc")
        (self.chroot / "root").chmod(0o711)  # the interpreter may live under /root (pyenv)
        self._bind(self.root, writable=True)
        for path in job_visible_paths():
            self._bind(path, writable=False)

    def _bind(self, path: Path, writable: bool) -> None:
        assert self.chroot is not None
        target = self.chroot / path.relative_to("/")
        for parent in reversed(target.relative_to(self.chroot).parents):
            folder = self.chroot / parent
            if not folder.exists():
                folder.mkdir(mode=0o755)
                folder.chmod(0o755)
        target.mkdir(exist_ok=True)
        self._mount(["--bind", str(path)], target)
        if not writable:
            _run(["mount", "-o", "remount,bind,ro", str(target)])

    def _mount(self, args: list[str], target: Path) -> None:
        _run(["mount", *args, str(target)])
        self.mounts.append(target)

    def unmount(self) -> None:
        while self.mounts:
            target = self.mounts.pop()
            done = subprocess.run(["umount", str(target)], capture_output=True, check=False, timeout=60)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False, timeout=60)

    def _daemon_argv(self, *argv: str) -> list[str]:
        return ["chroot", str(self.chroot), *argv] if self.chroot is not None else list(argv)

    def client_argv(self, *argv: str) -> list[str]:
        """An HTCondor command-line tool as a client runs it (in the chroot where the pool runs from one;
        the pool's folder is seen there at the same path). Give it `env` in its environment."""
        return self._daemon_argv(*argv)

    def admin(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run an HTCondor tool as root with the daemons' configuration (condor_off, condor_q -all, ...)."""
        return subprocess.run(
            self._daemon_argv(*argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "CONDOR_CONFIG": str(self.daemon_config)},
        )

    # ---- daemons ---------------------------------------------------------------------------------
    def start(self) -> None:
        log = open(self.root / "log" / "master.out", "ab")
        try:
            self.master = subprocess.Popen(
                self._daemon_argv("/usr/sbin/condor_master", "-f"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "CONDOR_CONFIG": str(self.daemon_config)},
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait(lambda: (self.root / "passwords.d" / "POOL").exists(), "the pool signing key")
        self.make_token()
        self._wait(self._schedd_answers, "the schedd to answer")
        self._wait(self._slots_ready, "the startd's slots")

    def make_token(self) -> None:
        """An IDTOKENS token of the ordinary user, readable by it alone (and root)."""
        token = self.admin("condor_token_create", "-identity", f"{USER}@gridpipe", "-key", "POOL", timeout=60)
        if token.returncode != 0:
            raise RuntimeError(f"condor_token_create failed: {token.stderr}")
        for folder, uid, gid in (
            (self.root / "client-tokens", self.user.pw_uid, self.user.pw_gid),
            (self.root / "root-tokens", 0, 0),
        ):
            path = folder / "gridpipe-ci"
            path.write_text(token.stdout)
            for p in (folder, path):
                os.chown(p, uid, gid)
            folder.chmod(0o700)
            path.chmod(0o600)

    def _schedd_answers(self) -> bool:
        done = self.client("condor_q", "-totals")
        return done.returncode == 0

    def _slots_ready(self) -> bool:
        done = self.client("condor_status", "-af", "Name")
        return done.returncode == 0 and bool(done.stdout.strip())

    def client(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run an HTCondor client tool as the ordinary user would (its token, the client config)."""
        return subprocess.run(
            self._daemon_argv(*argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **self.env},
        )

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():  # type: ignore[operator]
            if self.master is not None and self.master.poll() is not None:
                raise RuntimeError(f"condor_master exited ({self.master.returncode}): {self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")
            time.sleep(0.3)

    def stop_schedd(self) -> None:
        """Stop the schedd (the master keeps it stopped until `start_schedd`); clients cannot reach it."""
        done = self.admin("condor_off", "-fast", "-daemon", "schedd")
        if done.returncode != 0:
            raise RuntimeError(f"condor_off failed: {done.stderr}")
        self._wait(lambda: not self._schedd_answers(), "the schedd to stop")

    def start_schedd(self) -> None:
        done = self.admin("condor_on", "-daemon", "schedd")
        if done.returncode != 0:
            raise RuntimeError(f"condor_on failed: {done.stderr}")
        self._wait(self._schedd_answers, "the schedd to answer again")

    def stop(self) -> None:
        if self.master is None or self.master.poll() is not None:
            return
        self.master.terminate()  # a graceful shutdown of every daemon and job
        try:
            self.master.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.master.pid, 9)
            self.master.wait(10)

    def logs(self) -> str:
        """The tails of the daemons' logs (for failure messages)."""
        tails = []
        for path in [*sorted((self.root / "log").glob("*Log")), self.root / "log" / "master.out"]:
            if path.exists():
                tails.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(tails)

    # ---- the ordinary user -----------------------------------------------------------------------
    def workdir(self, name: str) -> Path:
        """A fresh folder owned by the ordinary user that jobs can see (under the pool's folder)."""
        path = Path(tempfile.mkdtemp(prefix=f"{name[:40]}-", dir=self.root / "work"))
        path.chmod(0o755)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def chown(self, path: Path) -> None:
        """Hand a tree to the ordinary user (after making it as root)."""
        for folder, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(folder, name), self.user.pw_uid, self.user.pw_gid)
        os.lchown(path, self.user.pw_uid, self.user.pw_gid)

    @contextmanager
    def as_user(self) -> Iterator[None]:
        """Act as the ordinary user in this process (files made are its own); root again afterwards."""
        import htcondor2

        # the user may not read this interpreter's files here (/root/.pyenv): import what the backend,
        # its thread pool and the analysis need while still root
        for module in ("concurrent.futures.thread", "gridpipe.backends.htcondor", "gridpipe.service.context"):
            importlib.import_module(module)
        htcondor2.param["SEC_TOKEN_DIRECTORY"] = str(self.root / "client-tokens")  # the user's own copy
        uid, gid = self.user.pw_uid, self.user.pw_gid
        os.setresgid(gid, gid, 0)
        os.setresuid(uid, uid, 0)  # real and effective: HTCondor's clients look at both; saved: root again
        try:
            yield
        finally:
            os.setresuid(0, 0, 0)
            os.setresgid(0, 0, 0)
            htcondor2.param["SEC_TOKEN_DIRECTORY"] = str(self.root / "root-tokens")

    def user_argv(self, argv: list[str]) -> list[str]:
        """`argv` run as the ordinary user: in the chroot where there is one (this interpreter may live
        where the user cannot reach it on this machine, e.g. under /root), else directly."""
        if self.chroot is None:
            return argv
        ids = f"{self.user.pw_uid}:{self.user.pw_gid}"
        return ["chroot", f"--userspec={ids}", f"--groups={self.user.pw_gid}", str(self.chroot), *argv]

    def _user_kwargs(self, env: dict[str, str] | None) -> dict[str, object]:
        kwargs: dict[str, object] = {
            "env": {**os.environ, **self.user_env, "HOME": str(self.root / "work"), **(env or {})},
            "cwd": str(self.root / "work"),
        }
        if self.chroot is None:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return kwargs

    def user_command(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as the ordinary user with the client environment."""
        return subprocess.run(
            self.user_argv(argv), capture_output=True, text=True, check=False, timeout=timeout,
            **self._user_kwargs(env),  # type: ignore[arg-type]
        )  # fmt: skip

    def user_popen(
        self, argv: list[str], env: dict[str, str] | None = None, **kwargs: object
    ) -> subprocess.Popen[str]:
        """Start a command as the ordinary user with the client environment."""
        return subprocess.Popen(
            self.user_argv(argv),
            text=True,
            **self._user_kwargs(env),
            **kwargs,  # type: ignore[arg-type]
        )


def _reload_bindings() -> None:
    with contextlib.suppress(ImportError):
        import htcondor2

        htcondor2.reload_config()


@contextmanager
def running_pool() -> Iterator[HTCondorPool]:
    """A fresh pool for the duration of the block; stopped, unmounted and removed afterwards."""
    user = ensure_user()
    cannot = user_cannot_run_jobs(user)
    if cannot is not None:
        raise RuntimeError(cannot)
    root = Path(tempfile.mkdtemp(prefix="gridpipe-htcondor-"))
    root.chmod(0o755)
    pool = HTCondorPool(root, user)
    old = os.environ.get("CONDOR_CONFIG")
    try:
        pool.write_configs()
        pool.mount()
        pool.start()
        os.environ.update(pool.env)
        _reload_bindings()
        yield pool
    finally:
        if old is None:
            os.environ.pop("CONDOR_CONFIG", None)
        else:
            os.environ["CONDOR_CONFIG"] = old
            _reload_bindings()
        pool.stop()
        pool.unmount()
        shutil.rmtree(root, ignore_errors=True)
