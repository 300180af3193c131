"""Printing for the CLI: rich on a terminal, plain text when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import Any

from rich.console import Console
from rich.markup import escape


@cache
def console() -> Console:
    """Console for normal output (stdout); piped output is never cut to a terminal's width."""
    out = Console(highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out = Console(highlight=False, soft_wrap=True, width=1000)
    return out


@cache
def err_console() -> Console:
    """Console for messages and errors (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """Print `gridpipe: error: ...`, one line per line of `message`, on stderr."""
    for line in message.splitlines() or [""]:
        err_console().print(f"[bold red]gridpipe: error:[/] {escape(line)}", markup=True, highlight=False)


def warn(message: str) -> None:
    """Print a warning line on stderr."""
    err_console().print(f"[yellow]warning:[/] {escape(message)}", markup=True, highlight=False)


def print_json(data: Any) -> None:
    """Machine output on stdout: stable keys, UTF-8."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
