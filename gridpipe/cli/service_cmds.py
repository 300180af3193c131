"""`service start|stop|status|logs|queues|add|pause|resume|remove`: the background service, one per user."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from gridpipe.cli.options import JsonOutput
from gridpipe.cli.root import app

if TYPE_CHECKING:
    from gridpipe.client import Client
    from gridpipe.service.statedir import ServiceInfo, StateDir

service_app = typer.Typer(
    name="service",
    help="The background service: drives analyses by itself, serves the API and the dashboard.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(service_app)

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 120.0

AnalysisArg = typer.Argument(..., help="The analysis folder (or its id in `service status`).")


def _state() -> StateDir:
    from gridpipe.service.statedir import StateDir

    return StateDir.for_user()


def _running(state: StateDir) -> ServiceInfo | None:
    """The running service's info, None when none answers."""
    from gridpipe.client import Client, ServiceNotRunningError
    from gridpipe.service.statedir import process_alive

    info = state.read_info()
    if info is None or not process_alive(info.pid):
        return None
    try:
        with Client(state=state, timeout=5) as client:
            client.health()
    except ServiceNotRunningError:
        return None
    return info


def _client() -> Client:
    from gridpipe.client import Client

    return Client(state=_state())


def dashboard_url(info: ServiceInfo) -> str | None:
    """The dashboard's URL with the token (to open once; it sets a cookie)."""
    return f"http://{info.http}/?token={info.token}" if info.http else None


@service_app.command("start")
def start_cmd(
    http: str = typer.Option(
        None,
        "--http",
        help="Serve the API and the dashboard on HOST:PORT too (loopback).",
        show_default=False,
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a --http address that is not loopback (anyone there can try)."
    ),
    submission: int = typer.Option(2, "--submission-workers", min=1, max=64, help="Workers that submit."),
    monitoring: int = typer.Option(4, "--monitoring-workers", min=1, max=64, help="Workers that refresh."),
    transfers: int = typer.Option(2, "--transfers-workers", min=1, max=64, help="Workers that download."),
) -> None:
    """Start the service in the background (it survives the terminal closing)."""
    import subprocess
    import sys

    from gridpipe.cli.output import console, warn
    from gridpipe.core.exceptions import UsageError
    from gridpipe.service.address import is_loopback, split_address

    state = _state()
    state.ensure()
    running = _running(state)
    if running is not None:
        console().print(f"the gridpipe service is already running (process {running.pid}, {running.socket})")
        return
    if http:
        host, _port = split_address(http)
        if not is_loopback(host):
            if not allow_remote:
                raise UsageError(
                    f"--http {http}: not a loopback address; pass --allow-remote to bind it anyway"
                )
            warn(
                f"--http {http} is not a loopback address: anyone who reaches it and has the token steers your analyses"
            )
    argv = [sys.executable, "-m", "gridpipe.web.daemon", "--state-dir", str(state.root), "--detach"]
    argv += ["--submission-workers", str(submission), "--monitoring-workers", str(monitoring)]
    argv += ["--transfers-workers", str(transfers)]
    if http:
        argv += ["--http", http] + (["--allow-remote"] if allow_remote else [])
    with open(state.log, "ab") as log:
        first = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/"
        )
    code = first.wait(timeout=START_TIMEOUT_S)  # the first child exits once the service has forked
    info = _wait_started(state, code)
    console().print(f"the gridpipe service is running (process {info.pid}, socket {info.socket})")
    url = dashboard_url(info)
    if url:
        console().print(f"dashboard: {url}")


def _wait_started(state: StateDir, code: int) -> ServiceInfo:
    from gridpipe.core.exceptions import GridpipeError

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = _running(state)
        if info is not None:
            return info
        if code:
            break
        time.sleep(0.1)
    tail = state.log.read_text(errors="replace").splitlines()[-5:] if state.log.exists() else []
    raise GridpipeError(
        "the service did not start"
        + (f"; its log ({state.log}) ends with: " + " | ".join(tail) if tail else "")
    )


@service_app.command("stop")
def stop_cmd() -> None:
    """Stop the service gracefully (jobs keep running on their backends; the next start takes them up)."""
    import os
    import signal

    from gridpipe.cli.output import console
    from gridpipe.client import ServiceNotRunningError
    from gridpipe.service.statedir import process_alive

    state = _state()
    info = state.read_info()
    if info is None or not process_alive(info.pid):
        console().print("the gridpipe service is not running")
        return
    try:
        with _client() as client:
            client.shutdown()
    except ServiceNotRunningError:  # alive but not answering: ask by signal
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while process_alive(info.pid):
        if time.monotonic() > deadline:
            from gridpipe.core.exceptions import GridpipeError

            raise GridpipeError(
                f"the service (process {info.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.1)
    console().print(f"the gridpipe service stopped (process {info.pid}); running jobs carry on")


@service_app.command("status")
def status_cmd(json_output: bool = JsonOutput) -> None:
    """Is the service running, and what is it doing with each analysis."""
    from gridpipe.cli.output import console, print_json, styled

    state = _state()
    info = _running(state)
    if info is None:
        if json_output:
            print_json({"running": False, "state_dir": str(state.root)})
        else:
            console().print("the gridpipe service is not running")
        raise typer.Exit(3)
    with _client() as client:
        health, analyses = client.health(), client.analyses()
    if json_output:
        print_json(
            {
                "running": True,
                "pid": info.pid,
                "version": info.version,
                "started": info.started,
                "socket": info.socket,
                "http": info.http,
                "state_dir": str(state.root),
                "analyses": analyses,
            }
        )
        return
    out = console()
    out.print(
        f"the gridpipe service is running (process {info.pid}, version {health['version']}, since {info.started})"
    )
    out.print(f"  socket {info.socket}" + (f", dashboard http://{info.http}/" if info.http else ""))
    if not analyses:
        out.print(
            "  it drives no analysis; hand it one with `gridpipe run --detach` or `gridpipe service add PATH`"
        )
    for a in analyses:
        style = {
            "error": "red",
            "stalled": "red",
            "locked": "yellow",
            "paused": "yellow",
            "complete": "green",
        }
        line: list[Any] = [f"  {a['id']}  ", (a["state"], style.get(a["state"], "cyan")), f"  {a['path']}"]
        out.print(styled(*line))
        if a["message"]:
            out.print(f"      {a['message']}")
        if a.get("warning"):
            out.print(styled("      ", ("warning:", "yellow"), f" submission paused: {a['warning']}"))


@service_app.command("logs")
def logs_cmd(
    lines: int = typer.Option(50, "--lines", "-n", min=1, help="Show the last N lines."),
) -> None:
    """The service's log (its last lines)."""
    import sys
    from collections import deque

    state = _state()
    if not state.log.exists():
        sys.stdout.write(f"no service log yet ({state.log})\n")
        return
    with open(state.log, encoding="utf-8", errors="replace") as fh:
        tail = deque(fh, maxlen=lines)
    sys.stdout.write("".join(tail))


@service_app.command("queues")
def queues_cmd(json_output: bool = JsonOutput) -> None:
    """Each work lane: what every worker does and for how long, and the tasks waiting."""
    from gridpipe.cli.output import console, print_json

    with _client() as client:
        lanes = client.queues()["lanes"]
    if json_output:
        print_json(lanes)
        return
    out = console()
    for lane in lanes:
        out.print(
            f"{lane['name']}: {lane['size']} worker(s), {len(lane['waiting'])} waiting (at most {lane['capacity']})"
        )
        for w in lane["workers"]:
            doing = f"{w['task']} [{w['analysis']}] for {w['running_for']:.1f} s" if w["task"] else "idle"
            out.print(f"  {w['worker']}: {doing}")
        for t in lane["waiting"]:
            out.print(f"  waiting: {t['task']} [{t['analysis']}] for {t['waiting_for']:.1f} s")


def _print_analysis(a: dict[str, Any], verb: str) -> None:
    from gridpipe.cli.output import console

    console().print(f"{verb} {a['path']} (id {a['id']}, {a['state']})")


@service_app.command("add")
def add_cmd(
    path: Path = typer.Argument(..., help="The analysis folder.", file_okay=False),
    max_active: int = typer.Option(
        None, "--max-active", min=1, help="Most jobs active at once.", show_default=False
    ),
    max_attempts: int = typer.Option(
        None, "--max-attempts", min=1, help="Submissions of a job before it fails.", show_default=False
    ),
    poll_interval: float = typer.Option(
        None, "--poll-interval", min=0.05, help="Seconds between refreshes.", show_default=False
    ),
    paused: bool = typer.Option(False, "--paused", help="Add it paused (`service resume` starts it)."),
) -> None:
    """Hand an analysis to the service, with the options of `gridpipe run`; returns at once."""
    with _client() as client:
        added = client.add(
            path, max_active=max_active, max_attempts=max_attempts, poll_interval=poll_interval, paused=paused
        )
    _print_analysis(added, "the service drives")


@service_app.command("pause")
def pause_cmd(analysis: str = AnalysisArg) -> None:
    """Stop driving the analysis until resumed (its jobs keep running; `gridpipe run` may take it)."""
    with _client() as client:
        _print_analysis(client.pause(analysis), "paused")


@service_app.command("resume")
def resume_cmd(analysis: str = AnalysisArg) -> None:
    """Drive a paused analysis again (or retry one in error now)."""
    with _client() as client:
        _print_analysis(client.resume(analysis), "resumed")


@service_app.command("remove")
def remove_cmd(analysis: str = AnalysisArg) -> None:
    """Stop driving the analysis and forget it (its jobs keep running)."""
    with _client() as client:
        _print_analysis(client.remove(analysis), "removed")
