"""Jinja2 rendering with filters that make every value safe for YAML and for shell scripts."""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import yaml

from gridpipe.core.resources import templates_dir


def yaml_value(value: Any) -> str:
    """One YAML flow value that parses back to exactly `value` (strings always double-quoted)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_value(k)}: {yaml_value(v)}" for k, v in value.items()) + "}"
    style = '"' if isinstance(value, str) else None
    text = yaml.safe_dump(value, default_style=style, allow_unicode=True, width=2**31)
    return text.removesuffix("\n...\n").rstrip("\n")


def yaml_path(base: str, relative: str) -> str:
    """YAML value of `base`/`relative` (for absolute local paths in configs)."""
    return yaml_value(str(Path(base) / PurePosixPath(relative)))


def environment(extra_dirs: list[Path] | None = None) -> jinja2.Environment:
    """A strict environment: unknown variables are errors, nothing is HTML-escaped."""
    search = [str(d) for d in (extra_dirs or [])] + [str(templates_dir())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    env.filters["yaml"] = yaml_value
    env.filters["yaml_path"] = yaml_path
    env.filters["shquote"] = lambda value: shlex.quote(str(value))
    return env


def render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> str:
    """Render one template by its name below the search path."""
    return env.get_template(template).render(**context)
