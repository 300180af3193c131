"""Turn a stage's command templates into argvs: split like a shell, substitute per token, never run a shell.

Templates are split once per unit (`compile_commands`); each job only substitutes its values.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gridpipe.core.exceptions import UsageError

_PER_INPUT = ("{input}", "{input_stem}")
INPUTS_TOKEN = "{inputs}"  # noqa: S105 - a command token, not a secret


@dataclass(frozen=True)
class CommandTemplate:
    """One command line, split into tokens; `per_input` ones run once per input file."""

    tokens: tuple[str, ...]
    per_input: bool


def stem(name: str) -> str:
    """File name without any suffix (`a.simtel.zst` -> `a`)."""
    base = name.rsplit("/", 1)[-1]
    return base.split(".", 1)[0] if not base.startswith(".") else base


def fill(template: str, values: Mapping[str, Any], where: str) -> str:
    """Format one template; an unknown placeholder is a clear error naming `where`."""
    if "{" not in template and "}" not in template:
        return template
    try:
        return template.format_map(values)
    except (KeyError, IndexError) as exc:
        known = ", ".join(sorted(k for k in values if not k.startswith("_")))
        raise UsageError(
            f"{where}: unknown placeholder {{{exc.args[0]}}} in {template!r}; known: {known}"
        ) from None
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{where}: bad placeholder in {template!r} ({exc})") from None


def compile_commands(templates: Sequence[str], where: str) -> list[CommandTemplate]:
    """Split command templates like a shell would (quotes allowed)."""
    compiled = []
    for template in templates:
        try:
            tokens = tuple(shlex.split(template))
        except ValueError as exc:
            raise UsageError(f"{where}: cannot split command {template!r} ({exc})") from None
        if not tokens:
            raise UsageError(f"{where}: empty command")
        per_input = any(marker in token for token in tokens for marker in _PER_INPUT)
        compiled.append(CommandTemplate(tokens, per_input))
    return compiled


def expand_commands(
    compiled: Sequence[CommandTemplate], values: Mapping[str, Any], inputs: Sequence[str], where: str
) -> tuple[tuple[str, ...], ...]:
    """Argvs for a job. `{inputs}` alone as a token becomes one argument per input; a command using
    `{input}`/`{input_stem}` is repeated for each input."""
    argvs: list[tuple[str, ...]] = []
    for command in compiled:
        rounds = [{"input": i, "input_stem": stem(i)} for i in inputs] if command.per_input else [{}]
        for extra in rounds:
            scope = {**values, **extra} if extra else values
            argv: list[str] = []
            for token in command.tokens:
                if token == INPUTS_TOKEN:
                    argv += inputs
                else:
                    argv.append(fill(token, scope, where))
            argvs.append(tuple(argv))
    return tuple(argvs)
