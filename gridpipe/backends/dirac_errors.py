"""DiracX client errors in gridpipe's words: which are worth a retry, and one line saying what went wrong.

azure-core raises ServiceRequestError when nothing was sent (connection refused), ServiceResponseError
when no answer came (reset, read timeout), HttpResponseError (ClientAuthenticationError for 401) for
an error answer; building a client raises httpx2 errors (its .well-known request) or RuntimeError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gridpipe.backends.dirac_credentials import RENEW


def is_transient(exc: BaseException) -> bool:
    """Network faults, timeouts and 5xx (or 408/429) answers: worth another try for idempotent calls."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, HttpResponseError):
        return (exc.status_code or 0) >= 500 or exc.status_code in (408, 429)
    if isinstance(exc, RuntimeError):
        return "well-known" in str(exc)
    if _status_error(exc):
        return int(exc.response.status_code) >= 500  # type: ignore[attr-defined]
    return type(exc).__module__.startswith("httpx")


def _status_error(exc: BaseException) -> bool:
    """An httpx2 HTTPStatusError: the sandbox store (S3, reached directly) answered with an error."""
    return type(exc).__module__.startswith("httpx") and type(exc).__name__ == "HTTPStatusError"


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _server_detail(exc: Any) -> str:
    """The server's `detail` of an HTTP error answer, or the error's own message."""
    try:
        body = json.loads(exc.response.text())
        detail = body.get("detail", body) if isinstance(body, dict) else body
        return _one_line(str(detail))
    except Exception:
        return _one_line(exc.reason or str(exc))


def describe(exc: BaseException, url: str, token_path: Path) -> str:
    """One line saying what went wrong (never a token)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, ClientAuthenticationError):
        return f"the DiracX server at {url} refused the credentials in {token_path} (401); {RENEW}"
    if isinstance(exc, HttpResponseError):
        return f"the DiracX server at {url} answered {exc.status_code}: {_server_detail(exc)}"
    if _status_error(exc):
        return f"the sandbox store answered {exc.response.status_code} ({_one_line(str(exc), 120)})"  # type: ignore[attr-defined]
    if isinstance(exc, ServiceResponseError):
        return f"no answer from the DiracX server at {url} ({_one_line(str(exc), 120)})"
    if isinstance(exc, ServiceRequestError | ConnectionError) or type(exc).__module__.startswith("httpx"):
        return f"cannot reach the DiracX server at {url} ({type(exc).__name__}: {_one_line(str(exc), 120)})"
    return f"{type(exc).__name__}: {_one_line(str(exc))}"


def catchable() -> tuple[type[BaseException], ...]:
    """Errors a call may raise that become BackendErrors (anything else is a bug and propagates)."""
    try:
        import httpx2
        from azure.core.exceptions import AzureError
    except ImportError:  # pragma: no cover - without diracx-client nothing gets this far
        return (OSError,)
    return (AzureError, OSError, RuntimeError, httpx2.HTTPError)
