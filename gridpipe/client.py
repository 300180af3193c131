"""The Python client of the background service: `gridpipe.Client`, httpx over the service's Unix socket
(or over its loopback HTTP address with the token).

    from gridpipe import Client

    with Client() as c:                      # the service of this user (XDG state folder)
        c.add("~/analyses/my_ana", max_active=200)
        c.status("~/analyses/my_ana")["stages"]
        c.pause("~/analyses/my_ana")
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from gridpipe.analysis.locate import find_analysis
from gridpipe.core.exceptions import GridpipeError, UsageError
from gridpipe.service.driven import analysis_id
from gridpipe.service.statedir import StateDir

_ID_LENGTH = 12


class ServiceNotRunningError(UsageError):
    """No service answers at `where`."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"no gridpipe service is running ({where}); start it with `gridpipe service start`")


class ServiceRequestError(GridpipeError):
    """The service refused a request: its HTTP `status`, its `error` and the `field` it names."""

    def __init__(self, status: int, error: str, field: str | None) -> None:
        self.status, self.error, self.field = status, error, field
        super().__init__(error)
        if 400 <= status < 500:
            self.exit_code = 2 if status in (400, 422) else 1


def key_of(analysis: str | Path) -> str:
    """The API id of an analysis given by path (or by id)."""
    text = str(analysis)
    if len(text) == _ID_LENGTH and all(c in "0123456789abcdef" for c in text) and not Path(text).exists():
        return text
    path = Path(text).expanduser()
    try:
        return analysis_id(find_analysis(path))
    except UsageError:  # a vanished analysis can still be removed
        return analysis_id(path.resolve())


class Client:
    """The service's API as methods; every answer is the API's JSON (dicts and lists)."""

    def __init__(
        self,
        *,
        state: StateDir | None = None,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        if url is not None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)
            self.where = url
        else:
            self.state = state or StateDir.for_user()
            transport = httpx.HTTPTransport(uds=str(self.state.socket))
            self._http = httpx.Client(
                transport=transport, base_url="http://gridpipe.service", timeout=timeout
            )
            self.where = str(self.state.socket)

    # ---- plumbing -------------------------------------------------------------------------------
    def _call(self, method: str, path: str, about: str | Path | None = None, **kwargs: Any) -> Any:
        """The JSON answer; `about`: the analysis as the caller named it (for an error about it)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, FileNotFoundError) as exc:
            raise ServiceNotRunningError(self.where) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
                error, field = str(body.get("error", response.text)), body.get("field")
            except ValueError:
                error, field = response.text.strip() or response.reason_phrase, None
            if about is not None and field == "analysis_id" and response.status_code == 404:
                error = f"the service does not drive {about}; see `gridpipe service status`"
            raise ServiceRequestError(response.status_code, error, field)
        return response.json()

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- the service ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Version, process id, start time, number of analyses."""
        return self._call("GET", "/v1/health")

    def shutdown(self) -> dict[str, Any]:
        """Stop the service gracefully (jobs keep running on their backends)."""
        return self._call("POST", "/v1/shutdown")

    def queues(self) -> dict[str, Any]:
        """Each lane's workers (their task, how long it has run) and waiting tasks."""
        return self._call("GET", "/v1/queues")

    # ---- analyses ---------------------------------------------------------------------------------
    def analyses(self) -> list[dict[str, Any]]:
        """Every analysis the service drives."""
        return self._call("GET", "/v1/analyses")["analyses"]

    def add(
        self,
        path: str | Path,
        *,
        max_active: int | None = None,
        max_attempts: int | None = None,
        poll_interval: float | None = None,
        paused: bool = False,
    ) -> dict[str, Any]:
        """Hand the analysis at (or containing) `path` to the service, with `gridpipe run`'s options."""
        root = find_analysis(Path(path).expanduser())
        options = {"max_active": max_active, "max_attempts": max_attempts, "poll_interval": poll_interval}
        body = {"path": str(root), "options": options, "paused": paused}
        return self._call("POST", "/v1/analyses", json=body)

    def analysis(self, analysis: str | Path) -> dict[str, Any]:
        """One analysis: its state, message and recent events."""
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}", analysis)

    def pause(self, analysis: str | Path) -> dict[str, Any]:
        """Stop driving it until resumed (its jobs keep running)."""
        return self._call("POST", f"/v1/analyses/{key_of(analysis)}/pause", analysis)

    def resume(self, analysis: str | Path) -> dict[str, Any]:
        """Drive it again."""
        return self._call("POST", f"/v1/analyses/{key_of(analysis)}/resume", analysis)

    def remove(self, analysis: str | Path) -> dict[str, Any]:
        """Stop driving it and forget it."""
        return self._call("POST", f"/v1/analyses/{key_of(analysis)}/remove", analysis)

    def status(self, analysis: str | Path, *, limit: int = 100) -> dict[str, Any]:
        """`status --json` of the analysis (the first `limit` jobs) and the service's state of it."""
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}/status", analysis, params={"limit": limit})

    def jobs(
        self,
        analysis: str | Path,
        *,
        stage: str | None = None,
        particle: str | None = None,
        status: list[str] | None = None,
        offset: int = 0,
        limit: int = 50,
        sort: str = "planned",
    ) -> dict[str, Any]:
        """A page of jobs (total, offset, limit, jobs), filtered by stage, particle and states, in the order
        `sort` (planned, name, status, or updated: the latest first)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit, "sort": sort}
        params |= {k: v for k, v in (("stage", stage), ("particle", particle), ("status", status)) if v}
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}/jobs", analysis, params=params)

    def failures(self, analysis: str | Path) -> dict[str, Any]:
        """Failed or killed jobs grouped by reason and by site."""
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}/failures", analysis)

    def pace(self, analysis: str | Path, *, window: float = 3600, buckets: int = 30) -> dict[str, Any]:
        """Per stage: jobs done and left, jobs done per hour over the last `window` seconds (and per bucket of
        it), and the estimated seconds to completion."""
        params = {"window": window, "buckets": buckets}
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}/pace", analysis, params=params)

    def job(self, analysis: str | Path, name: str) -> dict[str, Any]:
        """One job with its attempts and the logs of its last attempt."""
        return self._call("GET", f"/v1/analyses/{key_of(analysis)}/jobs/{quote(name, safe='')}", analysis)

    def kill(
        self,
        analysis: str | Path,
        names: list[str] | None = None,
        *,
        stage: str | None = None,
        all_jobs: bool = False,
    ) -> dict[str, Any]:
        """Kill jobs (by name, a stage's, or all): {killed: [...], ended: {name: state}}."""
        body = {"names": names or [], "stage": stage, "all": all_jobs}
        return self._call("POST", f"/v1/analyses/{key_of(analysis)}/kill", analysis, json=body)

    def resubmit(
        self, analysis: str | Path, names: list[str] | None = None, *, failed: bool = False
    ) -> dict[str, Any]:
        """Resubmit failed or killed jobs (by name, or all with `failed`): {submitted: {name: id}}."""
        body = {"names": names or [], "failed": failed}
        return self._call("POST", f"/v1/analyses/{key_of(analysis)}/resubmit", analysis, json=body)

    def events(
        self, analysis: str | Path, *, after: int = 0, follow: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The analysis's events as they come (server-sent events): {"id", "time", "text"}; with `follow`
        off, those kept so far."""
        path = f"/v1/analyses/{key_of(analysis)}/events"
        params = {"after": after, "follow": follow}
        try:
            with self._http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    body = response.json()
                    raise ServiceRequestError(response.status_code, str(body.get("error")), body.get("field"))
                event: dict[str, Any] = {}
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        event["id"] = int(line[4:])
                    elif line.startswith("data: "):
                        event |= json.loads(line[6:])
                    elif not line and event:
                        yield event
                        event = {}
        except (httpx.ConnectError, FileNotFoundError) as exc:
            raise ServiceNotRunningError(self.where) from exc
