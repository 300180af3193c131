"""Printing for the CLI: rich on a terminal, plain text when piped, JSON on request.

rich is imported on the first use of a console: a command that prints nothing through it does not pay for it.
"""

from __future__ import annotations

import json
import shlex
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

# Both consoles have rich markup and emoji codes switched off: every string printed, table cell included,
# appears exactly as given (paths, names, reasons and server messages can hold "[b]", "[/]" or ":bomb:").
# Styles are given as `styled` pieces, never as markup inside text.

PIPED_WIDTH = 1000
"""Width of piped output: lines are never cut to a terminal's width."""


@cache
def console() -> Console:
    """Console for normal output (stdout); piped output is never cut to a terminal's width."""
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=True, width=PIPED_WIDTH, markup=False, emoji=False)
    return out


@cache
def err_console() -> Console:
    """Console for messages and errors (stderr)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def styled(*parts: str | tuple[str, str]) -> RenderableType:
    """One line of plain strings and (text, style) pairs; no part is read as markup."""
    from rich.text import Text

    return Text.assemble(*parts)


def command_line(*argv: str | object) -> str:
    """A command line a user can paste into a shell: every word quoted as the shell needs."""
    return shlex.join(str(arg) for arg in argv)


def error(message: str) -> None:
    """Print `gridpipe: error: ...`, one line per line of `message`, on stderr."""
    for line in message.splitlines() or [""]:
        err_console().print(styled(("gridpipe: error:", "bold red"), " ", line))


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    err_console().print(styled(("warning:", "yellow"), " ", message))


def print_json(data: Any) -> None:
    """Machine output on stdout: stable keys, UTF-8."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
