"""Jinja2 rendering with filters that make every value safe for YAML and for shell scripts."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import jinja2.sandbox
import yaml
from pydantic import BaseModel

from gridpipe.core.exceptions import ConfigError
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


class _ExactDumper(yaml.SafeDumper):
    """Double-quotes strings holding characters YAML 1.1 would fold or drop (NEL, LS, PS, controls)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = None if value.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ExactDumper.add_representer(str, _represent_str)


def yaml_document(data: Any) -> str:
    """A block YAML document (plain keys, key order kept) that parses back to exactly `data`."""
    return yaml.dump(data, Dumper=_ExactDumper, sort_keys=False, allow_unicode=True)


def key_of(name: str) -> str:
    """`name` as a YAML mapping key: plain when it is a simple word, else quoted."""
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name) else yaml_value(name)


def settings_block(kind: str, name: str, settings: BaseModel, indent: str = "  ") -> str:
    """The YAML lines of a plugin's section `name:` (each key under its description), inside `kind:`."""
    lines = [f"{indent}# Settings of the {name} {kind} (`gridpipe schema` describes every key)."]
    values = settings.model_dump(mode="json")
    if not values:
        return "\n".join([*lines, f"{indent}{key_of(name)}: {{}}", ""])
    lines.append(f"{indent}{key_of(name)}:")
    for key, field in type(settings).model_fields.items():
        if field.description:
            lines.append(f"{indent * 2}# {' '.join(field.description.split())}")
        lines.append(f"{indent * 2}{field.alias or key}: {yaml_value(values[field.alias or key])}")
    return "\n".join([*lines, ""])


_SHELL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def shell_quote(value: Any) -> str:
    """One shell word that expands to exactly `str(value)`; double quotes, so shellcheck stays quiet."""
    text = str(value)
    if _SHELL_SAFE.fullmatch(text):
        return text
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def yaml_path(base: str, relative: str) -> str:
    """YAML value of `base`/`relative` (for absolute local paths in configs)."""
    return yaml_value(str(Path(base) / PurePosixPath(relative)))


def environment(extra_dirs: list[Path] | None = None) -> jinja2.Environment:
    """A strict, sandboxed environment: unknown variables are errors, nothing is HTML-escaped, and a
    template (gridpipe's or a user's override from `extra_dirs`) can reach no Python internals nor change
    the values it is given."""
    search = [str(d) for d in (extra_dirs or [])] + [str(templates_dir())]
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml"] = yaml_value
    env.filters["yaml_path"] = yaml_path
    env.filters["shquote"] = shell_quote
    return env


def render(env: jinja2.Environment, template: str, context: dict[str, Any]) -> str:
    """Render one template by its name below the search path; template problems become ConfigErrors."""
    try:
        return env.get_template(template).render(**context)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(getattr(env.loader, "searchpath", []))
        raise ConfigError(
            template, f"template {exc.name!r} not found (searched {searched}); fix the name or add the file"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            exc.filename or template, f"template syntax error: {exc.message}", line=exc.lineno
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise ConfigError(
            template,
            f"template refused by the sandbox ({exc}); templates may only use the documented variables",
        ) from None
    except jinja2.TemplateError as exc:
        raise ConfigError(
            template, f"template error: {exc.message}; use only the documented variables"
        ) from None


def overridden_templates(env: jinja2.Environment, names: list[str]) -> list[str]:
    """Which of the templates `names` a user's template folder replaces (not taken from gridpipe's own)."""
    own = str(templates_dir())
    out = []
    for name in names:
        try:
            source = env.loader.get_source(env, name)[1] if env.loader else None  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            continue
        if source and not source.startswith(own):
            out.append(name)
    return out
