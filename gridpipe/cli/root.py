"""The root typer app and its global options; command modules register on it, `cli.app` runs it.

Help is plain text (typer's rich help imports rich.markdown and rich.traceback, which doubles start-up
time).
"""

from __future__ import annotations

import typer

from gridpipe.core.version import __version__

app = typer.Typer(
    name="gridpipe",
    help="Scaffold protopipe-style grid analyses and run them on local, DIRAC and batch backends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

state = {"debug": False, "interrupt_said": False}
"""Global options of this invocation (`--debug`); whether a command already said it was interrupted."""


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
    state["debug"] = debug


def _plain_metavars() -> None:
    """Help names a repeatable option's value after the option (`--particle PARTICLE`) and shows a named
    argument by its name alone (`[JOB]...`), never as a Python type (`<list[str]>`)."""
    from typer.core import TyperArgument, TyperOption

    option_type = TyperOption.display_type_rich
    argument_type = TyperArgument.display_type_rich

    def option(self: TyperOption, ctx: typer.Context) -> str | None:
        if self.metavar is None and self.type_descriptor.is_list:
            return (self.name or "value").upper()
        return option_type(self, ctx)

    def argument(self: TyperArgument, ctx: typer.Context) -> str | None:
        if self.metavar is not None or self.type_descriptor.is_list:
            return None
        return argument_type(self, ctx)

    TyperOption.display_type_rich = option  # type: ignore[method-assign]
    TyperArgument.display_type_rich = argument  # type: ignore[method-assign]


_plain_metavars()
