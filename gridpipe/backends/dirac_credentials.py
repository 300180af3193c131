"""The diracx credentials file: who the token is for and how long it lasts (the token is never shown).

The file is diracx's own (`dirac login` writes it): {"access_token", "refresh_token", "expires_on"}.
The client sends the access token only while more than 300 s of it are left; after that it renews it
with a still-valid refresh token, or sends nothing (401). So the token is usable until the later of
the access token's `expires_on` and the refresh token's `exp`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gridpipe.core.exceptions import BackendError
from gridpipe.core.timeutil import utcnow

CLIENT_THRESHOLD = timedelta(seconds=300)
"""diracx-client sends no token with less than this left (and cannot renew without a refresh token)."""
RENEW = "renew it with `dirac login`"


@dataclass(frozen=True)
class TokenInfo:
    """What a credentials file says about its owner and lifetime (never the token itself)."""

    path: Path
    user: str
    group: str
    vo: str
    properties: tuple[str, ...]
    expires_on: datetime
    refresh_expires_on: datetime | None = None

    @property
    def usable_until(self) -> datetime:
        """When the client can no longer get a token from this file."""
        return max(self.expires_on, self.refresh_expires_on or self.expires_on)

    def time_left(self, now: datetime | None = None) -> timedelta:
        """Time until `usable_until` (negative once expired)."""
        return self.usable_until - (now or utcnow())


def default_credentials_path(override: Path | None = None) -> Path:
    """The file diracx reads: the override, else DIRACX_CREDENTIALS_PATH, else ~/.cache/diracx/credentials.json."""
    if override is not None:
        return override
    env = os.environ.get("DIRACX_CREDENTIALS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "diracx" / "credentials.json"


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the server verifies it; we only read names and expiry)."""
    payload = token.split(".")[1]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if not isinstance(data, dict):
        raise ValueError("token payload is not an object")
    return data


def read_token_info(path: Path) -> TokenInfo:
    """Read the credentials file (shared lock, as diracx does); BackendError saying how to log in."""
    try:
        with path.open(encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            data = json.load(fh)
    except FileNotFoundError:
        raise BackendError(f"{path}: no DIRAC credentials; log in with `dirac login`") from None
    except (OSError, ValueError) as exc:
        raise BackendError(f"{path}: unreadable DIRAC credentials ({type(exc).__name__}); {RENEW}") from None
    try:
        claims = _claims(data["access_token"])
        refresh = data.get("refresh_token")
        refresh_exp = _claims(refresh).get("exp") if refresh else None
        return TokenInfo(
            path=path,
            user=str(claims.get("preferred_username", "?")),
            group=str(claims.get("dirac_group", "?")),
            vo=str(claims.get("vo", "?")),
            properties=tuple(claims.get("dirac_properties", ())),
            expires_on=datetime.fromtimestamp(int(data["expires_on"]), UTC),
            refresh_expires_on=datetime.fromtimestamp(int(refresh_exp), UTC) if refresh_exp else None,
        )
    except (KeyError, IndexError, TypeError, ValueError):
        raise BackendError(f"{path}: not a diracx credentials file; {RENEW}") from None


def describe_duration(delta: timedelta) -> str:
    """'2 h 05 min', '4 min 10 s' or '12 s' for a positive duration."""
    seconds = int(abs(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def required_validity(minimum: timedelta) -> timedelta:
    """What submission demands: the configured minimum, never less than the client's own threshold."""
    return max(minimum, CLIENT_THRESHOLD)


def check_token(info: TokenInfo, minimum: timedelta, now: datetime | None = None) -> None:
    """BackendError when the token is expired or has no more than the required time left."""
    left = info.time_left(now)
    owner = f"the DIRAC token of {info.user} ({info.group}) in {info.path}"
    if left.total_seconds() <= 0:
        raise BackendError(f"{owner} expired {describe_duration(left)} ago; {RENEW}, then submit again")
    required = required_validity(minimum)
    if left <= required:
        raise BackendError(
            f"{owner} has only {describe_duration(left)} left; submitting needs more than "
            f"{describe_duration(required)} (configs/grid.yaml dirac.min_token_validity); {RENEW}, then submit again"
        )


def token_report(info: TokenInfo, minimum: timedelta, now: datetime | None = None) -> dict[str, Any]:
    """Plain facts for `gridpipe credentials` (JSON-ready; no token)."""
    left = info.time_left(now)
    seconds = int(left.total_seconds())
    if seconds <= 0:
        state = "expired"
    elif left <= required_validity(minimum):
        state = "too short to submit"
    else:
        state = "valid"
    return {
        "credentials": str(info.path),
        "user": info.user,
        "group": info.group,
        "vo": info.vo,
        "properties": list(info.properties),
        "expires": info.usable_until.isoformat(),
        "renewable": info.refresh_expires_on is not None,
        "seconds_left": seconds,
        "time_left": describe_duration(left) if seconds > 0 else "none",
        "state": state,
        "renew": "dirac login",
    }
