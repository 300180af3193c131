"""Command-line values made into Python values without pydantic where typer's own result is certain.

typer (0.29 and later) coerces each parameter of the command it runs through a pydantic TypeAdapter that it
builds on the spot: importing pydantic and building the adapters was two fifths of `gridpipe status`.
gridpipe's parameters are text, whole numbers, paths, choices and lists of them; their usual values are
coerced here with typer's own functions (a path's checks, a choice's matching). Anything else (a number
written another way, out of range, a path or choice typer refuses) goes to typer's adapter, which gives
its usual value or its usual error. tests/test_cli_coercion.py holds both to the same results for every
parameter of every command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

try:  # typer >= 0.29: coercion through pydantic
    from typer import core
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path, routes_to_path
except ImportError:  # pragma: no cover - older typer coerces with click alone
    core = None

WHOLE_NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,17})")
"""A whole number as written plainly: its value is int(text), for typer as for Python."""


class Unsure(Exception):
    """The value is left to typer's adapter."""


def coerce(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """`value` as typer makes it for a parameter of type `annotation`; Unsure (or the error of one of typer's
    functions) where that is not certain."""
    if info.parser is not None:
        raise Unsure
    if get_origin(annotation) is list and isinstance(value, (list, tuple)):
        (item,) = get_args(annotation)
        return [coerce(item, info, v, param, ctx) for v in value]
    if not isinstance(value, str):
        raise Unsure
    if annotation is str:
        return value
    if annotation is int and not info.clamp and WHOLE_NUMBER.fullmatch(value):
        number = int(value)
        if (info.min is None or number >= info.min) and (info.max is None or number <= info.max):
            return number
        raise Unsure
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return coerce_cli_choice(value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx)
    if annotation is Path and info.path_type is None and routes_to_path(annotation, info) and value:
        return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    raise Unsure


if core is not None:

    @dataclass(frozen=True)
    class LightParam(RuntimeParam):
        """typer's runtime coercion of one parameter, its pydantic adapter built only when needed."""

        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return coerce(self.annotation, self.parameter_info, value, param, ctx)
            except Exception:  # Unsure, or a value typer refuses: typer's adapter says it as typer does
                adapter = build_runtime_param(self.descriptor)
                return adapter._coerce_value(value, param=param, ctx=ctx)


def install() -> None:
    """Coerce the parameters of gridpipe's commands through `coerce` first (nothing with an older typer)."""
    if core is None or not hasattr(core._TyperParameter, "get_runtime_param"):
        return

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            d = self.type_descriptor
            try:  # a typer whose RuntimeParam has other fields coerces as it does itself
                light = LightParam(parameter_info=d.parameter_info, annotation=d.annotation, descriptor=d)
            except TypeError:
                light = None
            self._runtime_param = (
                light if light is not None and d.file_annotation is None else build_runtime_param(d)
            )
        return self._runtime_param

    core._TyperParameter.get_runtime_param = get_runtime_param
