"""Turn a stage's command templates into argvs: split like a shell, substitute per token, never run a shell."""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from gridpipe.core.exceptions import UsageError

_PER_INPUT = ("{input}", "{input_stem}")


def _stem(name: str) -> str:
    path = PurePosixPath(name)
    while path.suffix:
        path = path.with_suffix("")
    return path.name


def fill(template: str, values: Mapping[str, Any], where: str) -> str:
    """Format one template; an unknown placeholder is a clear error naming `where`."""
    try:
        return string.Formatter().vformat(template, (), values)
    except (KeyError, IndexError) as exc:
        known = ", ".join(sorted(k for k in values if not k.startswith("_")))
        raise UsageError(
            f"{where}: unknown placeholder {{{exc.args[0]}}} in {template!r}; known: {known}"
        ) from None
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"{where}: bad placeholder in {template!r} ({exc})") from None


def expand_commands(
    templates: Sequence[str], values: Mapping[str, Any], inputs: Sequence[str], where: str
) -> tuple[tuple[str, ...], ...]:
    """Argvs for a job. `{inputs}` alone as a token becomes one argument per input; a command using
    `{input}`/`{input_stem}` is repeated for each input."""
    argvs: list[tuple[str, ...]] = []
    for template in templates:
        try:
            tokens = shlex.split(template)
        except ValueError as exc:
            raise UsageError(f"{where}: cannot split command {template!r} ({exc})") from None
        if not tokens:
            raise UsageError(f"{where}: empty command")
        per_input = any(marker in token for token in tokens for marker in _PER_INPUT)
        rounds = [{"input": i, "input_stem": _stem(i)} for i in inputs] if per_input else [{}]
        for extra in rounds:
            scope = {**values, **extra}
            argv: list[str] = []
            for token in tokens:
                if token == "{inputs}":  # noqa: S105 - a command token, not a secret
                    argv += list(inputs)
                else:
                    argv.append(fill(token, scope, where))
            argvs.append(tuple(argv))
    return tuple(argvs)
