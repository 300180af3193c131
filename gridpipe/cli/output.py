"""Printing for the CLI: rich on a terminal, plain text when piped, JSON on request.

rich is imported on the first use of a console (it costs a short command about a tenth of its time):
`status` writes its lines and its table without it (`write_line`, `cli.boxtable`).
"""

from __future__ import annotations

import builtins
import json
import os
import shlex
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from gridpipe.cli.boxtable import Look

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


RICH_ENVIRONMENT = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")
"""Variables that change how rich sees a stream: where one is set, rich decides."""


def stdout_look() -> Look | None:
    """How `console()` shows text on stdout, found without importing rich: styles on a terminal (not a
    dumb one), its width (COLUMNS, else the terminal's, else 80); unstyled and PIPED_WIDTH wide when piped.
    None where rich's own rules are needed: its variables set, a dumb terminal, a stream that is not
    UTF-8, Windows, IDLE or Jupyter."""
    out = sys.stdout
    if (
        sys.platform == "win32"
        or any(name in os.environ for name in RICH_ENVIRONMENT)
        or hasattr(builtins, "get_ipython")
        or getattr(sys.stdin, "__module__", "").startswith("idlelib")
        or not (getattr(out, "encoding", None) or "utf-8").lower().startswith("utf")
    ):
        return None
    try:
        terminal = out.isatty()
    except ValueError:  # a closed stream
        terminal = False
    if not terminal:
        return Look(styled=False, width=PIPED_WIDTH)
    if os.environ.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return Look(styled=True, width=int(columns)) if int(columns) else None
    for fd in (0, 1, 2):
        try:
            return Look(styled=True, width=os.get_terminal_size(fd).columns or 80)
        except (OSError, ValueError):
            continue
    return Look(styled=True, width=80)


def write_line(text: str) -> None:
    """A line of plain text on stdout (printable, no control characters), as `console().print(text)`
    shows it."""
    sys.stdout.write(text + "\n")


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
