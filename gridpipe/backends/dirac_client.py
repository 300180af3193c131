"""Calls to a DiracX server through diracx-client: pooled clients, one-line errors, bounded retries.

Every client is built with azure-core's own retry disabled (`retry_total=0`): it would re-send a
POST after a 5xx, and a resent `submit_jdl_jobs` creates the jobs twice. Idempotent calls (search,
kill, sandbox reads) are retried here instead, with bounded exponential backoff, after network faults,
timeouts and 5xx answers; submission never is (the engine reconciles by job name instead).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from gridpipe.backends.dirac_credentials import default_credentials_path
from gridpipe.backends.dirac_errors import catchable, describe, is_transient
from gridpipe.core.exceptions import BackendError, MissingPackageError

T = TypeVar("T")
log = logging.getLogger("gridpipe.backends.dirac")
PER_PAGE = 10_000
"""The server's largest page."""
INSTALL = "the dirac backend needs diracx-client: pip install 'gridpipe[dirac]'"


def missing_diracx(exc: ImportError) -> MissingPackageError:
    """The error for a diracx that cannot be imported (not installed, or broken)."""
    return MissingPackageError(exc.name or "diracx", INSTALL)


@dataclass(frozen=True)
class ConnectionSettings:
    """Which server, which credentials, and how patiently to talk to it."""

    url: str = ""
    credentials_path: Path | None = None
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 1.0
    backoff_max: float = 30.0

    def preferences(self) -> Any:
        """diracx preferences: the overrides, else diracx's own environment (DIRACX_URL, ...)."""
        try:
            from diracx.core.preferences import DiracxPreferences
            from pydantic import ValidationError
        except ImportError as exc:
            raise missing_diracx(exc) from exc
        given: dict[str, Any] = {"url": self.url} if self.url else {}
        if self.credentials_path is not None:
            given["credentials_path"] = self.credentials_path
        try:
            return DiracxPreferences(**given)
        except ValidationError as exc:
            fields = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
            what = "no valid DiracX server URL" if "url" in fields else f"invalid diracx settings ({fields})"
            raise BackendError(
                f"{what}: set DIRACX_URL (as for `dirac login`) or dirac.url in configs/grid.yaml"
            ) from None

    @property
    def token_path(self) -> Path:
        """The credentials file the client reads."""
        return default_credentials_path(self.credentials_path)

    def client_options(self) -> dict[str, Any]:
        """azure-core options of every client: no built-in retry, bounded timeouts."""
        return {"retry_total": 0, "connection_timeout": self.timeout, "read_timeout": self.timeout}

    def within(self, seconds: float) -> ConnectionSettings:
        """These settings, changed so that one call with its retries takes at most about `seconds`."""
        timeout = min(self.timeout, seconds / 2)
        retries, spent = 0, timeout
        while retries < self.retries and spent + self.delay(retries) + timeout <= seconds:
            spent += self.delay(retries) + timeout
            retries += 1
        return replace(self, timeout=timeout, retries=retries)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based): exponential, bounded."""
        return min(self.backoff * 2**attempt, self.backoff_max)


class DiracConnection:
    """Sync clients of one server, built when first needed and reused (one per thread in flight)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._idle: list[Any] = []
        self._open: list[Any] = []
        self._lock = threading.Lock()
        self._prefs: Any = None
        weakref.finalize(self, _close_all, self._open)

    def preferences(self) -> Any:
        """The resolved diracx preferences (cached)."""
        if self._prefs is None:
            self._prefs = self.settings.preferences()
        return self._prefs

    @property
    def url(self) -> str:
        """The server URL, for messages."""
        try:
            return str(self.preferences().url).rstrip("/")
        except BackendError:
            return "(no DiracX URL)"

    @contextmanager
    def client(self) -> Iterator[Any]:
        """An idle client, or a new one (the constructor itself contacts the server)."""
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            try:
                from diracx.client.sync import SyncDiracClient
            except ImportError as exc:
                raise missing_diracx(exc) from exc
            client = SyncDiracClient(diracx_preferences=self.preferences(), **self.settings.client_options())
            with self._lock:
                self._open.append(client)
        try:
            yield client
        finally:
            with self._lock:
                self._idle.append(client)

    def call(self, what: str, fn: Callable[[Any], T], *, retry: bool = True) -> T:
        """`fn(client)`; transient faults retried when `retry`, every failure a one-line BackendError."""
        return self._attempts(what, lambda: self._with_client(fn), retry)

    def call_async(self, what: str, fn: Callable[[Any], Awaitable[T]], *, retry: bool = True) -> T:
        """`await fn(async_client)` in a fresh event loop (diracx.api wants the async client)."""

        async def once() -> T:
            from diracx.client.aio import AsyncDiracClient

            options = self.settings.client_options()
            async with AsyncDiracClient(diracx_preferences=self.preferences(), **options) as client:
                return await fn(client)

        return self._attempts(what, lambda: asyncio.run(once()), retry)

    def _with_client(self, fn: Callable[[Any], T]) -> T:
        with self.client() as client:
            return fn(client)

    def _attempts(self, what: str, thunk: Callable[[], T], retry: bool) -> T:
        tries = 1 + (self.settings.retries if retry else 0)
        for attempt in range(tries):
            try:
                return thunk()
            except catchable() as exc:
                if isinstance(exc, RuntimeError) and not is_transient(exc):
                    raise
                if not retry or not is_transient(exc) or attempt + 1 == tries:
                    tried = f" (after {attempt + 1} tries)" if attempt else ""
                    raise BackendError(
                        f"{what}: {describe(exc, self.url, self.settings.token_path)}{tried}"
                    ) from exc
                wait = self.settings.delay(attempt)
                log.warning(
                    "%s: %s; retrying in %.2f s",
                    what,
                    describe(exc, self.url, self.settings.token_path),
                    wait,
                )
                time.sleep(wait)
        raise AssertionError("unreachable")

    def search_all(
        self, what: str, search: list[dict[str, Any]], parameters: list[str], *, per_page: int = PER_PAGE
    ) -> list[dict[str, Any]]:
        """Every matching job, page after page (sorted by JobID; each page retried on its own)."""
        rows: list[dict[str, Any]] = []
        for page in range(1, 100_000):
            batch, total = self.call(what, lambda c, p=page: _search_page(c, search, parameters, p, per_page))
            rows += batch
            if len(batch) < per_page or len(rows) >= total:
                return rows
        raise BackendError(f"{what}: the search did not end after 100000 pages")

    def close(self) -> None:
        """Close every client (their HTTP sessions)."""
        with self._lock:
            self._idle.clear()
            _close_all(self._open)


def _search_page(
    client: Any, search: list[dict[str, Any]], parameters: list[str], page: int, per_page: int
) -> tuple[list[dict[str, Any]], int]:
    """One page and the total count (Content-Range on partial answers; the default page is only 100 rows)."""

    def keep(pipeline_response: Any, rows: list[dict[str, Any]], _headers: Any) -> tuple[list[Any], int]:
        content_range = pipeline_response.http_response.headers.get("Content-Range")  # "jobs 0-99/150"
        total = int(content_range.rsplit("/", 1)[1]) if content_range else len(rows)
        return rows, total

    by_id = [{"parameter": "JobID", "direction": "asc"}]
    return client.jobs.search(  # type: ignore[no-any-return]
        parameters=parameters, search=search, sort=by_id, page=page, per_page=per_page, cls=keep
    )


def _close_all(clients: list[Any]) -> None:
    while clients:
        clients.pop().close()
