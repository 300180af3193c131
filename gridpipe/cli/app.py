"""The `gridpipe` command: global options, error handling and exit codes.

Exit codes: 0 success, 1 operation failed, 2 bad usage or config, 130 interrupted.
Command modules import their logic inside the command functions so that start-up stays fast; help is
plain text (typer's rich help imports rich.markdown and rich.traceback, which doubles start-up time).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from gridpipe import __version__

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer with click as a dependency
    from click.exceptions import ClickException  # type: ignore[no-redef]

app = typer.Typer(
    name="gridpipe",
    help="Scaffold protopipe-style grid analyses and run them on local, DIRAC and batch backends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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
    from gridpipe.cli import analysis_cmds, data_cmds, dirac_cmds, job_cmds, run_cmds  # noqa: F401  (commands register on import)


def _usage_line(exc: ClickException) -> str:
    """Click's usage error as one line, with the command whose --help explains it."""
    ctx = getattr(exc, "ctx", None)
    message = " ".join(exc.format_message().split())
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


def main() -> None:
    """Console-script entry point."""
    from gridpipe.core.exceptions import EXIT_FAILED, GridpipeError

    try:
        code = app(standalone_mode=False)
    except GridpipeError as exc:
        _fail(exc.detail, exc.exit_code)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `gridpipe` alone: its help, on stderr
            exc.show()
            sys.exit(exc.exit_code)
        _fail(_usage_line(exc), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130)
    except OSError as exc:  # a fault of the machine (full disk, read-only file), not a bug: one line, exit 1
        _fail(os_error_line(exc), EXIT_FAILED)
    except Exception as exc:
        _fail(
            f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(rerun with --debug for the traceback)",
            EXIT_FAILED,
        )
    sys.exit(code if isinstance(code, int) else 0)


def os_error_line(exc: OSError) -> str:
    """One line for a file-system fault: the file, the cause and what to do."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    cause = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}the file system is full ({cause}); free some space there and run the command again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{where}cannot be written ({cause}); this command changes the analysis: run it as the "
            "analysis's owner or on a writable copy (status --no-refresh, status --json, logs and "
            "submit --dry-run only read)"
        )
    return f"{where}{cause}"


def _fail(message: str | None, code: int) -> NoReturn:
    """Print `message` (and the traceback with --debug) on stderr, then exit with `code`."""
    if _state["debug"] and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    if message is not None:
        from gridpipe.cli.output import error

        error(message)
    sys.exit(code)


_register()
