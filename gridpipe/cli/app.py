"""The `gridpipe` command: global options, error handling and exit codes.

Exit codes: 0 success, 1 operation failed, 2 bad usage or config, 130 interrupted.
Command modules import their logic inside the command functions so that start-up stays fast.
"""

from __future__ import annotations

import sys
import traceback

import typer

from gridpipe import __version__

app = typer.Typer(
    name="gridpipe",
    help="Scaffold protopipe-style grid analyses and run them on local, DIRAC and batch backends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gridpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Scaffold protopipe-style grid analyses and run them on local, DIRAC and batch backends."""
    _state["debug"] = debug


def _register() -> None:
    from gridpipe.cli import analysis_cmds, data_cmds  # noqa: F401  (commands register on import)


def main() -> None:
    """Console-script entry point."""
    from gridpipe.cli.output import error
    from gridpipe.core.exceptions import EXIT_FAILED, GridpipeError

    try:
        app()
    except GridpipeError as exc:
        if _state["debug"]:
            traceback.print_exc()
        error(exc.detail)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            traceback.print_exc()
        error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        sys.exit(EXIT_FAILED)


_register()
