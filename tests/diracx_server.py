"""A real DiracX 0.7.0 server on 127.0.0.1 (SQLite + moto S3) for gridpipe's DIRAC backend tests.

Import this module only after `pytest.importorskip("diracx.testing")`: it needs the server packages
(`diracx-routers diracx-testing diracx-client diracx-api moto[s3] flask flask-cors`). With pytest's
default import mode `tests/` is on sys.path, so a conftest.py makes a session fixture like this:

    @pytest.fixture(scope="session")
    def diracx_server(tmp_path_factory):
        pytest.importorskip("diracx.testing")
        from diracx_server import running_server
        with running_server(tmp_path_factory.mktemp("diracx")) as server:
            yield server

`server.user_credentials` / `server.admin_credentials` are ready-made credential files; the admin
(NormalUser + JobAdministrator) plays the grid: `walk`, `assign_output_sandbox`, `search_by_names`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet
from diracx.api.jobs import create_sandbox
from diracx.client.aio import AsyncDiracClient
from diracx.client.models import JobStatusUpdate
from diracx.client.sync import SyncDiracClient
from diracx.core.extensions import DiracEntryPoint, select_from_extension
from diracx.core.models import AccessTokenPayload, TokenResponse
from diracx.core.preferences import DiracxPreferences
from diracx.core.settings import AuthSettings
from diracx.core.utils import write_credentials
from diracx.logic.auth.token import create_token
from joserfc.jwk import KeySet, OKPKey
from uuid_utils import uuid7

NORMAL_USER = "NormalUser"
JOB_ADMINISTRATOR = "JobAdministrator"
GRID_SOURCE = "gridpipe-test-grid"
_CHAIN = ("Received", "Checking", "Waiting", "Matched", "Running")
_PATHS = {
    "Running": _CHAIN,
    "Done": (*_CHAIN, "Completing", "Done"),
    "Failed": (*_CHAIN, "Failed"),
    "Stalled": (*_CHAIN, "Stalled"),
}
_MINOR = {
    "Checking": "JobSanity",
    "Waiting": "Pilot Agent Submission",
    "Matched": "Assigned",
    "Running": "Application",
    "Completing": "Uploading Output Sandbox",
    "Done": "Execution Complete",
    "Failed": "Application Finished With Errors",
    "Stalled": "Job stalled: pilot not running",
    "Killed": "Marked for termination",
}


class DiracxServerError(RuntimeError):
    """The test server did not start (the message carries the tail of its log)."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _subject(username: str) -> str:
    """Deterministic IdP subject (uuid) for a user name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gridpipe-test:{username}"))


def _http_status(url: str) -> int | None:
    """HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


class DiracxServer:
    """uvicorn(diracx.testing.routers:create_app) + moto S3 on loopback, all state under `base_dir`."""

    def __init__(self, base_dir: Path, *, vo: str = "gridpipe_vo", ready_timeout: float = 60.0) -> None:
        if not base_dir.is_absolute():
            raise ValueError(f"base_dir must be absolute (a relative path once wrote to /): {base_dir}")
        self.base_dir, self.vo, self.ready_timeout = base_dir, vo, ready_timeout
        self.user_group, self.admin_group = f"{vo}_user", f"{vo}_admin"
        self.username, self.admin_username = "gridpipe_user", "gridpipe_admin"
        self.port, self.s3_port = free_port(), free_port()
        self.url, self.s3_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.s3_port}"
        self.server_log, self.s3_log = base_dir / "logs" / "uvicorn.log", base_dir / "logs" / "moto.log"
        self.user_credentials = base_dir / "credentials" / "user.json"
        self.admin_credentials = base_dir / "credentials" / "admin.json"
        self._server: subprocess.Popen[bytes] | None = None
        self._s3: subprocess.Popen[bytes] | None = None
        self._last_stamp = datetime.now(UTC)

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> DiracxServer:
        """Write keys, config repo and DB dir, start moto and uvicorn, mint the two stock tokens."""
        (self.base_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.base_dir / "db").mkdir(exist_ok=True)
        self._write_jwks()
        self._write_config_repo()
        self._fernet = Fernet.generate_key().decode()
        moto = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)]
        self._s3 = self._spawn(moto, self.s3_log, dict(os.environ))
        self._wait_ready(self._s3, f"{self.s3_url}/", self.s3_log, ok=lambda code: code is not None)
        self.start_server()
        self.mint_credentials(self.user_credentials, lifetime=timedelta(hours=8))
        admin = (NORMAL_USER, JOB_ADMINISTRATOR)
        self.mint_credentials(
            self.admin_credentials, properties=admin, group=self.admin_group, lifetime=timedelta(hours=8)
        )
        return self

    def stop(self) -> None:
        """Stop uvicorn and moto (process groups: SIGTERM, then SIGKILL after 10 s)."""
        self.stop_server()
        self._s3 = _terminate(self._s3, signal.SIGTERM)

    def start_server(self) -> None:
        """Start uvicorn on the same port with the same databases; wait for /api/health/ready."""
        if self._server is not None and self._server.poll() is None:
            raise DiracxServerError(f"server already running on {self.url}")
        app = ["uvicorn", "--factory", "diracx.testing.routers:create_app"]
        cmd = [sys.executable, "-m", *app, "--host", "127.0.0.1", "--port", str(self.port)]
        self._server = self._spawn(cmd, self.server_log, self.server_env())
        self._wait_ready(self._server, f"{self.url}/api/health/ready", self.server_log, ok=lambda c: c == 200)

    def stop_server(self) -> None:
        """Stop uvicorn gracefully (SIGTERM)."""
        self._server = _terminate(self._server, signal.SIGTERM)

    def kill_server(self) -> None:
        """Kill uvicorn abruptly (SIGKILL), as a crash would."""
        self._server = _terminate(self._server, signal.SIGKILL)

    def restart_server(self) -> None:
        """Stop and start uvicorn again (same port, same SQLite files, same S3)."""
        self.stop_server()
        self.start_server()

    def __enter__(self) -> DiracxServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def server_env(self) -> dict[str, str]:
        """The environment uvicorn runs with (inherited env minus any DIRACX_* of the caller)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIRACX_")}
        db = self.base_dir / "db"
        for ep in select_from_extension(
            group=DiracEntryPoint.SQL_DB
        ):  # as `python -m diracx.db generate-local-urls`
            env[f"DIRACX_DB_URL_{ep.name.upper()}"] = f"sqlite+aiosqlite:///{db}/{ep.name.lower()}.db"
        for ep in select_from_extension(group=DiracEntryPoint.OS_DB):  # served by SQLite in diracx.testing
            dsn = {"sqlalchemy_dsn": f"sqlite+aiosqlite:///{db}/{ep.name.lower()}.db"}
            env[f"DIRACX_OS_DB_{ep.name.upper()}"] = json.dumps(dsn)
        s3_kwargs = {
            "endpoint_url": self.s3_url,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        env |= {
            "DIRACX_CONFIG_BACKEND_URL": f"git+file://{self.base_dir / 'cs'}",
            "DIRACX_SERVICE_AUTH_TOKEN_KEYSTORE": f"file://{self.base_dir / 'jwks.json'}",
            "DIRACX_SERVICE_AUTH_TOKEN_ISSUER": self.url,
            "DIRACX_SERVICE_AUTH_STATE_KEY": self._fernet,
            "DIRACX_SERVICE_AUTH_ALLOWED_REDIRECTS": json.dumps([f"{self.url}/docs/oauth2-redirect"]),
            "DIRACX_SANDBOX_STORE_BUCKET_NAME": "sandboxes",
            "DIRACX_SANDBOX_STORE_AUTO_CREATE_BUCKET": "true",
            "DIRACX_SANDBOX_STORE_S3_CLIENT_KWARGS": json.dumps(s3_kwargs),
        }
        return env

    def _spawn(self, cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `cmd` in its own process group, appending stdout+stderr to `log`."""
        with open(log, "ab") as fh:
            out = {"stdout": fh, "stderr": subprocess.STDOUT, "stdin": subprocess.DEVNULL}
            return subprocess.Popen(cmd, env=env, cwd=self.base_dir, start_new_session=True, **out)

    def _wait_ready(self, proc: subprocess.Popen[bytes], url: str, log: Path, *, ok: Any) -> None:
        """Poll `url` until `ok(status)`; raise with the log tail on exit or timeout."""
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if ok(_http_status(url)):
                return
            time.sleep(0.1)
        state = (
            f"exited with {proc.returncode}"
            if proc.poll() is not None
            else f"not ready after {self.ready_timeout}s"
        )
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise DiracxServerError(f"{url}: {state}; last lines of {log}:\n" + "\n".join(tail))

    # ---- keys, configuration, tokens ---------------------------------------------------------
    def _write_jwks(self) -> None:
        params = {"key_ops": ["sign", "verify"], "alg": "Ed25519", "kid": uuid7().hex}
        key = OKPKey.generate_key("Ed25519", parameters=params, private=True)  # type: ignore[arg-type]
        self._jwks_text = json.dumps(KeySet([key]).as_dict(private=True))
        _write_private(self.base_dir / "jwks.json", self._jwks_text)

    def _write_config_repo(self) -> None:
        members = {self.user_group: (self.username, [NORMAL_USER])}
        members[self.admin_group] = (self.admin_username, [NORMAL_USER, JOB_ADMINISTRATOR])
        registry = {
            "DefaultGroup": self.user_group,
            "IdP": {"URL": "https://idp.invalid", "ClientID": "gridpipe-test-idp"},
            "Users": {_subject(name): {"PreferedUsername": name} for name, _ in members.values()},
            "Groups": {g: {"Properties": props, "Users": [_subject(n)]} for g, (n, props) in members.items()},
        }
        config = {"DIRAC": {}, "Operations": {self.vo: {}}, "Registry": {self.vo: registry}}
        repo = self.base_dir / "cs"
        repo.mkdir(exist_ok=True)
        (repo / "default.yml").write_text(yaml.safe_dump(config, sort_keys=True))
        identity = "-c user.name=gridpipe-tests -c user.email=tests@invalid -c commit.gpgsign=false".split()
        for args in ("init -q -b master", "add default.yml", "commit -q -m test-config"):
            git = ["git", "-C", str(repo), *identity, *args.split()]
            subprocess.run(git, check=True, capture_output=True, timeout=30)

    def mint_credentials(
        self,
        path: Path,
        *,
        properties: Sequence[str] = (NORMAL_USER,),
        group: str | None = None,
        username: str | None = None,
        lifetime: timedelta = timedelta(hours=1),
        expired: bool = False,
    ) -> Path:
        """Write a diracx credentials file (0600, no refresh token) that the real client reads."""
        group = group or self.user_group
        username = username or (self.admin_username if group == self.admin_group else self.username)
        if expired:
            lifetime = -abs(lifetime) if lifetime else timedelta(minutes=-10)
        payload = AccessTokenPayload(
            sub=f"{self.vo}:{_subject(username)}",
            vo=self.vo,
            iss=self.url,
            dirac_properties=list(properties),
            jti=str(uuid7()),
            preferred_username=username,
            dirac_group=group,
            exp=datetime.now(UTC) + lifetime,
            dirac_policies={},
        )
        keys = {"token_keystore": self._jwks_text, "token_issuer": self.url, "state_key": self._fernet}
        token = create_token(payload, AuthSettings(**keys))  # type: ignore[arg-type]
        response = TokenResponse(access_token=token, expires_in=int(lifetime.total_seconds()))
        write_credentials(response, location=path)
        return path

    # ---- clients ------------------------------------------------------------------------------
    def preferences(self, credentials_path: Path) -> DiracxPreferences:
        """Client preferences for this server, independent of DIRACX_* environment variables."""
        return DiracxPreferences(url=self.url, credentials_path=credentials_path)  # type: ignore[arg-type]

    def client(self, credentials_path: Path) -> SyncDiracClient:
        """A sync client (use it as a context manager so its connections close)."""
        return SyncDiracClient(diracx_preferences=self.preferences(credentials_path))

    def async_client(self, credentials_path: Path) -> AsyncDiracClient:
        """An async client, as `diracx.api` functions want (`async with`)."""
        return AsyncDiracClient(diracx_preferences=self.preferences(credentials_path))

    # ---- playing the grid ------------------------------------------------------------------------
    def _stamp(self) -> str:
        """Aware UTC timestamp strictly later than the previous one handed out."""
        self._last_stamp = max(datetime.now(UTC), self._last_stamp + timedelta(milliseconds=1))
        return self._last_stamp.isoformat()

    def walk(
        self, job_ids: Iterable[int], to: str, *, site: str | None = None, minor_status: str | None = None
    ) -> None:
        """Move jobs along the real status chain to `to`, one bulk set_job_statuses per step."""
        ids = sorted(set(job_ids))
        with self.client(self.admin_credentials) as admin:
            rows = search_all(
                admin, [{"parameter": "JobID", "operator": "in", "values": ids}], ["JobID", "Status"]
            )
            current = {row["JobID"]: row["Status"] for row in rows}
            if missing := set(ids) - set(current):
                raise KeyError(f"jobs not found on the server: {sorted(missing)}")
            steps = self._steps(current, to)
            for step in [s for s in dict.fromkeys((*_PATHS.get(to, ()), to)) if s in steps]:
                minor = minor_status if (step == to and minor_status) else _MINOR.get(step, step)
                update = JobStatusUpdate(status=step, minor_status=minor, source=GRID_SOURCE)
                stamp = self._stamp()
                admin.jobs.set_job_statuses({str(j): {stamp: update} for j in steps[step]})
            if site is not None:
                admin.jobs.patch_metadata({j: {"Site": site} for j in ids})

    @staticmethod
    def _steps(current: dict[int, str], to: str) -> dict[str, list[int]]:
        """For each status on the path to `to`, the jobs that still have to pass through it."""
        steps: dict[str, list[int]] = {}
        for job_id, status in current.items():
            if to == "Killed":
                todo: Sequence[str] = () if status == "Killed" else ("Killed",)
            elif (path := _PATHS.get(to)) is None:
                raise ValueError(f"cannot walk to {to!r}: use one of {[*_PATHS, 'Killed']}")
            elif status not in path:
                raise ValueError(f"job {job_id} is {status}: not on the path to {to}")
            else:
                todo = path[path.index(status) + 1 :]
            for step in todo:
                steps.setdefault(step, []).append(job_id)
        return steps

    def assign_output_sandbox(self, job_id: int, files: dict[str, bytes]) -> str:
        """Upload `files` as the job's output sandbox with the owner's identity; return the PFN."""
        with self.client(self.admin_credentials) as admin:
            search = [{"parameter": "JobID", "operator": "eq", "value": job_id}]
            ((owner, group),) = [(r["Owner"], r["OwnerGroup"]) for r in search_all(admin, search)]
            with tempfile.TemporaryDirectory(dir=self.base_dir) as tmp:
                owner_creds = self.mint_credentials(Path(tmp) / "owner.json", group=group, username=owner)
                paths = [Path(tmp) / name for name in files]
                for path, data in zip(paths, files.values(), strict=True):
                    path.write_bytes(data)
                pfn = asyncio.run(self._create_sandbox(paths, owner_creds))
            admin.jobs.assign_sandbox_to_job(job_id, json.dumps(pfn))
        return pfn

    async def _create_sandbox(self, paths: list[Path], credentials: Path) -> str:
        async with self.async_client(credentials) as client:
            return await create_sandbox(paths, client=client)

    def search_by_names(self, job_group: str, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All jobs of `job_group` (optionally only `names`), every page, seen by the admin."""
        search: list[dict[str, Any]] = [{"parameter": "JobGroup", "operator": "eq", "value": job_group}]
        if names is not None:
            search.append({"parameter": "JobName", "operator": "in", "values": sorted(names)})
        with self.client(self.admin_credentials) as admin:
            return search_all(admin, search)


def search_all(
    client: SyncDiracClient,
    search: list[dict[str, Any]],
    parameters: list[str] | None = None,
    *,
    per_page: int = 1000,
) -> list[dict[str, Any]]:
    """Every matching job, page by page (sorted by JobID), never trusting the 100-row default."""
    rows: list[dict[str, Any]] = []
    for page in range(1, 10_000):
        batch, total = search_page(client, search, parameters, page=page, per_page=per_page)
        rows.extend(batch)
        if len(batch) < per_page or len(rows) >= total:
            return rows
    raise RuntimeError("search did not end after 10000 pages")


def search_page(
    client: SyncDiracClient,
    search: list[dict[str, Any]],
    parameters: list[str] | None,
    *,
    page: int,
    per_page: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of a job search and the total count (from Content-Range when the answer is partial)."""

    def keep(pipeline_response: Any, rows: list[dict[str, Any]], headers: dict[str, str]) -> tuple[Any, int]:
        content_range = pipeline_response.http_response.headers.get("Content-Range")  # "jobs 0-99/150"
        total = int(content_range.rsplit("/", 1)[1]) if content_range else len(rows)
        return rows, total

    by_id = [{"parameter": "JobID", "direction": "asc"}]
    return client.jobs.search(
        parameters=parameters, search=search, sort=by_id, page=page, per_page=per_page, cls=keep
    )


def _write_private(path: Path, text: str) -> None:
    """Write a secret file with mode 0600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _terminate(proc: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    """Signal the process group of `proc`, escalate to SIGKILL after 10 s, and reap it."""
    if proc is None:
        return None
    with contextlib.suppress(ProcessLookupError):  # the group may outlive its leader
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return None


@contextlib.contextmanager
def running_server(base_dir: Path, *, vo: str = "gridpipe_vo") -> Iterator[DiracxServer]:
    """A started server for the duration of the block, always stopped afterwards."""
    with DiracxServer(base_dir.resolve(), vo=vo) as server:
        yield server
