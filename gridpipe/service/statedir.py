"""Where the background service keeps its state: one folder per user (XDG state directory), 0700.

$XDG_STATE_HOME/gridpipe/  (default ~/.local/state/gridpipe/)
  service.sock     the HTTP API (0600)
  service.json     pid, version, token, socket, http address, start time (0600, written atomically)
  service.lock     held by the running service (one per user)
  service.log      what it did
  analyses.json    the analyses it drives (0600, written atomically)
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gridpipe.core.exceptions import UsageError
from gridpipe.core.fsutil import atomic_write_text

SOCKET_PATH_MAX = 100
"""A Unix socket path longer than this does not fit `sockaddr_un` (108 bytes with its terminator)."""


class ServiceInfo(BaseModel):
    """What `service.json` tells a client: how to reach the running service and whose it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pid: int
    version: str
    token: str
    socket: str
    http: str | None = None
    started: str


@dataclass(frozen=True)
class StateDir:
    """The service's files for this user."""

    root: Path

    @classmethod
    def for_user(cls, environ: dict[str, str] | None = None) -> StateDir:
        """`$XDG_STATE_HOME/gridpipe`, else `~/.local/state/gridpipe` (XDG base directory rules: a relative
        XDG_STATE_HOME is ignored)."""
        env = os.environ if environ is None else environ
        base = env.get("XDG_STATE_HOME", "")
        root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
        return cls(root / "gridpipe")

    @property
    def socket(self) -> Path:
        """The API's Unix socket."""
        return self.root / "service.sock"

    @property
    def info(self) -> Path:
        """pid, version and token of the running service."""
        return self.root / "service.json"

    @property
    def lock(self) -> Path:
        """Held by the running service."""
        return self.root / "service.lock"

    @property
    def log(self) -> Path:
        """The service's log."""
        return self.root / "service.log"

    @property
    def analyses(self) -> Path:
        """The analyses the service drives."""
        return self.root / "analyses.json"

    def ensure(self) -> None:
        """Create the folder 0700 (and tighten it if it exists): only this user reaches the socket."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = self.root.stat()
        if st.st_uid != os.getuid():
            raise UsageError(f"{self.root}: the service's folder belongs to another user; set XDG_STATE_HOME")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(self.root, 0o700)
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            raise UsageError(
                f"{self.socket}: the path is too long for a Unix socket ({len(str(self.socket))} characters, "
                f"at most {SOCKET_PATH_MAX}); set XDG_STATE_HOME to a shorter folder"
            )

    def write_info(self, info: ServiceInfo) -> None:
        """Write `service.json` atomically, 0600."""
        atomic_write_text(self.info, info.model_dump_json(indent=2) + "\n", mode=0o600)

    def read_info(self) -> ServiceInfo | None:
        """The running service's info, None when there is none (or it is unreadable: a crash mid-start)."""
        try:
            return ServiceInfo.model_validate(json.loads(self.info.read_text()))
        except (OSError, ValueError):
            return None


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a detached service is reaped by init, maybe late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[-1].split()[0] != "Z"
