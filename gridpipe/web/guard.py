"""Who may talk to the service. On the Unix socket (0600 in a 0700 folder): this user, nothing more to
check. On TCP: the Host header must name the address the service listens on (no DNS rebinding), and every
request carries the token: `Authorization: Bearer TOKEN`, or the cookie set when the dashboard's URL with
`?token=` is opened once; an action (POST) by cookie must also send `X-Gridpipe: 1` (a header no other
site's page can add without a CORS preflight, which is never granted)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "gridpipe_token"
ACTION_HEADER = b"x-gridpipe"


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


async def _refuse(send: Send, status: int, error: str, field: str) -> None:
    body = json.dumps({"error": error, "field": field}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"www-authenticate", b"Bearer")] if status == 401 else []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TokenGuard:
    """ASGI middleware: requests over TCP need an allowed Host and the token."""

    def __init__(self, app: App, token: str, hosts: set[str]) -> None:
        self.app, self.token, self.hosts = app, token, hosts

    def _good(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _over_unix_socket(scope):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1")
        if host not in self.hosts:
            await _refuse(send, 403, "the Host header does not name this service's address", "Host")
            return
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.startswith("Bearer ") and self._good(auth[7:].strip()):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if (
            scope["method"] == "GET"
            and scope["path"] == "/"
            and self._good(next(iter(query.get("token", [])), None))
        ):
            await self._set_cookie(scope, send, query)
            return
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        by_cookie = self._good(cookie[COOKIE].value if COOKIE in cookie else None)
        if by_cookie and (scope["method"] in ("GET", "HEAD") or headers.get(ACTION_HEADER) == b"1"):
            await self.app(scope, receive, send)
            return
        if by_cookie:
            await _refuse(send, 403, "an action by cookie needs the header X-Gridpipe: 1", "X-Gridpipe")
            return
        await _refuse(send, 401, "missing or wrong token", "Authorization")

    async def _set_cookie(self, scope: Scope, send: Send, query: dict[str, list[str]]) -> None:
        """The dashboard URL with the token, opened once: a cookie, and the same page without the token."""
        rest = {k: v for k, v in query.items() if k != "token"}
        location = "/" + (("?" + urlencode(rest, doseq=True)) if rest else "")
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _over_unix_socket(scope: Scope) -> bool:
    """uvicorn gives a Unix socket's server address as (path, None)."""
    server = scope.get("server")
    return bool(server) and server[1] is None


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host headers a browser sends for the service's own address."""
    names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {host}
    if host in ("::1", "[::1]"):
        names = {"[::1]", "localhost"}
    return {f"{name}:{port}" for name in names}
