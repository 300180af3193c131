"""The `gridpipe` command: the commands on the root app, error handling and exit codes.

Exit codes: 0 success, 1 operation failed, 2 bad usage or config, 130 interrupted.
Imports run one way: this module -> the command modules (`*_cmds`) -> `cli.root` (the typer app) and the
helpers. Command modules import their logic inside the command functions so that start-up stays fast.
"""

from __future__ import annotations

import copy
import gc
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from gridpipe.cli import analysis_cmds, data_cmds, dirac_cmds, job_cmds, run_cmds, service_cmds, storage_cmds  # noqa: F401  (commands register on import)
from gridpipe.cli.options import analysis_given
from gridpipe.cli.root import app, state

if TYPE_CHECKING:
    from gridpipe.service.context import Analysis

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer with click as a dependency
    from click.exceptions import ClickException  # type: ignore[no-redef]


def _usage_line(exc: ClickException) -> str:
    """Click's usage error as one line, with the command whose --help explains it."""
    ctx = getattr(exc, "ctx", None)
    message = " ".join(exc.format_message().split())
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


INTERRUPTED = 130
"""Exit code after Ctrl-C; the command has then said one line about it."""


ROOT_FLAGS = frozenset({"--debug"})
"""Options of the root command that come before a command's name."""


def _app_for(args: Sequence[str]) -> typer.Typer:
    """The app with only the command `args` names: typer builds the options of every command it holds on
    each start, which `status` would pay for the other fourteen. The whole app for its own help, a group
    (`storage`, `service`, ...) and anything else."""
    words = list(args)
    while words and words[0] in ROOT_FLAGS:
        words.pop(0)
    if not words or words[0].startswith("-"):
        return app
    chosen = [c for c in app.registered_commands if c.name == words[0]]
    if not chosen:
        return app
    single = copy.copy(app)
    single.registered_commands = chosen
    single.registered_groups = []
    return single


def main() -> None:
    """Console-script entry point."""
    code = run_cli()
    # The command is done (its files closed): the interpreter's last garbage collections would walk every
    # object it loaded, about 20 ms, to free memory the process gives back anyway. Frozen, they are skipped.
    gc.freeze()
    sys.exit(code)


def run_cli(
    argv: Sequence[str] | None = None, *, analysis: Analysis | None = None, prog_name: str | None = None
) -> int:
    """Run the command line on `argv` (default: the process's) and return its exit code; errors are
    printed as one line on stderr. `analysis` stands for --analysis-path when a command is not given one
    (`gridpipe.Workflow.main` hands over its own, unsaved stages included)."""
    from gridpipe.core.exceptions import EXIT_FAILED, GridpipeError

    state["interrupt_said"] = False
    try:
        with analysis_given(analysis):
            chosen = _app_for(sys.argv[1:] if argv is None else argv)
            code = chosen(args=argv, prog_name=prog_name, standalone_mode=False)
        if code == INTERRUPTED and not state["interrupt_said"]:  # typer turns Ctrl-C into a silent 130
            return _fail("interrupted", INTERRUPTED)
    except GridpipeError as exc:
        from gridpipe.cli.messages import error_text

        return _fail(error_text(exc), exc.exit_code)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `gridpipe` alone: its help, on stderr
            exc.show()
            return exc.exit_code
        return _fail(_usage_line(exc), exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("interrupted", INTERRUPTED)
    except OSError as exc:  # a fault of the machine (full disk, read-only file), not a bug: one line, exit 1
        return _fail(os_error_line(exc), EXIT_FAILED)
    except Exception as exc:
        return _fail(
            f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
            "(rerun with --debug for the traceback)",
            EXIT_FAILED,
        )
    return code if isinstance(code, int) else 0


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


def _fail(message: str | None, code: int) -> int:
    """Print `message` (and the traceback with --debug) on stderr; return `code`."""
    if state["debug"] and sys.exc_info()[0] is not None:
        import traceback

        traceback.print_exc()
    if message is not None:
        from gridpipe.cli.output import error

        error(message)
    return code
