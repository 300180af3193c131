"""Turn a stage's command templates into argvs: split like a shell, substitute per token, never run a shell.

Templates are split once per unit (`compile_commands`); each job only substitutes its values.
"""

from __future__ import annotations

import functools
import re
import shlex
import string
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
    """Fill one template's `{name}` placeholders (`{name[key]}` indexes a mapping; `{{`/`}}` are braces).

    Only values handed in are reachable: attribute access (`{x.__class__}`), nested fields and conversions
    are refused, so a template can never read more than its documented placeholders. An unknown or bad
    placeholder is a clear error naming `where`. A template is parsed once, however many jobs fill it.
    """
    if "{" not in template and "}" not in template:
        return template
    try:
        parts = _parsed(template)
    except ValueError as exc:
        raise UsageError(f"{where}: bad placeholder in {template!r} ({exc}); write {{name}}") from None
    out: list[str] = []
    for literal, field in parts:
        out.append(literal)
        if field is not None:
            out.append(format(_lookup(field, values, template, where), field.spec))
    return "".join(out)


@dataclass(frozen=True)
class _Field:
    """One placeholder of a template: its text, name, mapping keys and format spec."""

    text: str
    name: str
    keys: tuple[str, ...]
    spec: str


@functools.lru_cache(maxsize=1024)
def _parsed(template: str) -> tuple[tuple[str, _Field | None], ...]:
    """The literal text and placeholder of each part of `template`; ValueError for a bad placeholder."""
    parts: list[tuple[str, _Field | None]] = []
    for literal, field_name, spec, conversion in _FORMATTER.parse(template):
        if field_name is None:
            parts.append((literal, None))
            continue
        match = _FIELD.fullmatch(field_name)
        if not match:
            raise ValueError(f"{{{field_name}}} is not a placeholder name")
        name, keys = match.groups()
        field = _Field(field_name, name, tuple(_KEY.findall(keys)), _plain_spec(spec, conversion))
        parts.append((literal, field))
    return tuple(parts)


_FORMATTER = string.Formatter()
_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[^\[\]]+\])*)")
_KEY = re.compile(r"\[([^\[\]]+)\]")


def _lookup(field: _Field, values: Mapping[str, Any], template: str, where: str) -> Any:
    if field.name not in values:
        known = ", ".join(sorted(k for k in values if not k.startswith("_")))
        raise UsageError(f"{where}: unknown placeholder {{{field.name}}} in {template!r}; known: {known}")
    value = values[field.name]
    for key in field.keys:
        if not isinstance(value, Mapping) or key not in value:
            raise UsageError(f"{where}: {{{field.text}}} in {template!r}: no entry {key!r}")
        value = value[key]
    return value


def _plain_spec(spec: str | None, conversion: str | None) -> str:
    if conversion or (spec and ("{" in spec or "}" in spec)):
        raise ValueError("conversions (!r) and nested placeholders are not allowed")
    return spec or ""


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
