"""Read YAML config files into pydantic models, turning every problem into a one-line ConfigError.

Each error names the file, the key path, the line and what is allowed ("did you mean ...?").
`read_yaml` does not import pydantic (`analysis.glance` reads names without it).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gridpipe.core.exceptions import ConfigError, ConfigErrors
from gridpipe.core.safeyaml import KeyPath, YamlProblem, parse

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")


def read_yaml(path: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a YAML file; return its data and the line of every key path."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, "file not found; recreate it with `gridpipe create-analysis --overwrite`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read the file ({exc})") from None
    try:
        document = parse(text)
    except YamlProblem as exc:
        key = _key_text(exc.path) if exc.path else ""
        raise ConfigError(path, exc.message, key=key, line=exc.line) from None
    return document.data, document.lines


def _allowed_keys(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Key names allowed beside the key at `loc`, for 'did you mean'."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = current.model_fields if current is not None else {}
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None and hasattr(current, "plugin_models"):
            current = current.plugin_models().get(part)  # a plugin's own section, e.g. backend.dirac
            continue
        current = _item_model(field.annotation) if field is not None else None
    if current is None:
        return []
    if hasattr(current, "allowed_keys"):
        return list(current.allowed_keys())
    return [f.alias or name for name, f in current.model_fields.items()]


def _item_model(annotation: Any) -> Any:
    """The BaseModel inside list[...] / dict[..., ...] / Optional[...] annotations, if any."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(getattr(annotation, "__args__", ()) or ()):
        found = _item_model(arg)
        if found is not None:
            return found
    return None


def _message(error: dict[str, Any], model: type[BaseModel]) -> str:
    loc: KeyPath = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"unknown key{hint}; allowed here: {', '.join(allowed) or 'none'}"
    if kind == "missing":
        return "required key is missing; add it"
    text = error["msg"]
    shown_already = ("model_type", "dict_type", "plugin_not_installed", "plugin_unavailable")
    if "input" in error and kind not in shown_already and not isinstance(error["input"], dict):
        text += f" (got {_shown(error['input'])})"  # a whole section is not repeated: its line is named
    return text


SHOWN_CHARS = 80
"""At most this much of a wrong value is repeated in an error message."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 3]}..."


def _key_text(loc: KeyPath) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def errors_from_validation(
    exc: ValidationError, model: type[BaseModel], file: Path, lines: dict[KeyPath, int]
) -> ConfigErrors:
    """Turn pydantic's errors into one ConfigError per problem."""
    found: list[ConfigError] = []
    for error in exc.errors():
        loc: KeyPath = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        line = None
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in lines:
                line = lines[loc[:cut]]
                break
        found.append(ConfigError(file, _message(error, model), key=_key_text(loc), line=line))
    return ConfigErrors(found)


def load_model(model: type[M], path: Path, *, context: dict[str, Any] | None = None) -> M:
    """Read and validate one config file, raising ConfigErrors that name file, key and line."""
    from pydantic import ValidationError

    data, lines = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must hold a mapping of keys to values", line=1)
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise errors_from_validation(exc, model, path, lines) from None
