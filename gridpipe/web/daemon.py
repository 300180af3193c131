"""The background service process: `python -m gridpipe.web.daemon --state-dir DIR [--http HOST:PORT]`.

`gridpipe service start` starts it detached (a new session, then a second fork: no terminal can ever be
its controlling one, and closing the shell does not reach it). It holds `service.lock` (one service per
user), listens on the Unix socket (and on TCP when asked), writes `service.json`, takes up its analyses, and
on SIGTERM, SIGINT or `POST /v1/shutdown` stops gracefully: each driver ends its current step, jobs keep
running on their backends, the files it owns are removed.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import secrets
import socket
import sys
from pathlib import Path

from gridpipe.core.exceptions import UsageError
from gridpipe.core.fsutil import held_lock
from gridpipe.core.timeutil import isoformat, utcnow
from gridpipe.core.version import __version__
from gridpipe.service.address import is_loopback, split_address
from gridpipe.service.lanes import LANES
from gridpipe.service.statedir import ServiceInfo, StateDir

EXIT_ALREADY_RUNNING = 3
log = logging.getLogger("gridpipe.service")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gridpipe-service")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--http", default=None, help="HOST:PORT to serve the API and dashboard on too")
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --http address")
    parser.add_argument("--detach", action="store_true", help="fork again (the caller made a new session)")
    for lane in LANES:
        parser.add_argument(f"--{lane}-workers", type=int, default=2 if lane != "monitoring" else 4)
    return parser.parse_args(argv)


def _unix_socket(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)  # a stale socket of a killed service (we hold the lock: none runs)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def _logging(state: StateDir) -> None:
    handler = logging.handlers.RotatingFileHandler(state.log, maxBytes=5_000_000, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    os.chmod(state.log, 0o600)


def _detach() -> None:
    """Second fork: the service is not a session leader, so it can never acquire a terminal."""
    if os.fork():
        os._exit(0)
    os.chdir("/")


def main(argv: list[str] | None = None) -> int:
    """Run the service until stopped; the exit code."""
    args = _args(argv)
    state = StateDir(args.state_dir)
    state.ensure()
    try:
        http = split_address(args.http) if args.http else None
    except UsageError as exc:
        print(exc.detail, file=sys.stderr)
        return 2
    if http and not is_loopback(http[0]) and not args.allow_remote:
        print(f"--http {args.http}: not a loopback address; pass --allow-remote to bind it", file=sys.stderr)
        return 2
    if args.detach:
        _detach()
    with held_lock(state.lock, wait=False) as fd:
        if fd is None:
            print(f"a gridpipe service already runs for this user ({state.root})", file=sys.stderr)
            return EXIT_ALREADY_RUNNING
        return _serve(state, args, http)


def _serve(state: StateDir, args: argparse.Namespace, http: tuple[str, int] | None) -> int:
    import uvicorn

    from gridpipe.service.supervisor import Supervisor
    from gridpipe.web.app import ServiceContext, create_app
    from gridpipe.web.guard import TokenGuard, allowed_hosts

    _logging(state)
    sockets = [_unix_socket(state.socket)]
    address = None
    if http:
        tcp = _tcp_socket(*http)
        sockets.append(tcp)
        port = tcp.getsockname()[1]
        address = f"[{http[0]}]:{port}" if ":" in http[0] else f"{http[0]}:{port}"
        if not is_loopback(http[0]):
            log.warning(
                "LISTENING ON A NON-LOOPBACK ADDRESS %s: anyone who can reach it and has the token "
                "can steer your analyses",
                address,
            )
    info = ServiceInfo(
        pid=os.getpid(),
        version=__version__,
        token=secrets.token_urlsafe(32),
        socket=str(state.socket),
        http=address,
        started=isoformat(utcnow()),
    )
    sizes = {lane: getattr(args, f"{lane}_workers") for lane in LANES}
    supervisor = Supervisor(state, sizes, log.info)
    config = uvicorn.Config(
        None,  # type: ignore[arg-type]  # set below, once the server exists (shutdown needs it)
        log_config=None,
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    app = create_app(ServiceContext(supervisor, info, lambda: setattr(server, "should_exit", True)))
    hosts = allowed_hosts(http[0], int(address.rsplit(":", 1)[1])) if http and address else set()
    config.app = TokenGuard(app, info.token, hosts)
    log.info(
        "gridpipe service %s started (process %d), socket %s%s",
        __version__,
        os.getpid(),
        state.socket,
        f", http {address}" if address else "",
    )
    try:
        supervisor.start()
        state.write_info(info)
        server.run(sockets=sockets)
    finally:
        log.info("stopping: drivers end their current step; jobs keep running on their backends")
        supervisor.stop()
        state.info.unlink(missing_ok=True)
        state.socket.unlink(missing_ok=True)
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
