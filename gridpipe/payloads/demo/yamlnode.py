"""A small strict reader of YAML config sections: every problem is a ConfigError naming file and key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridpipe.core.exceptions import ConfigError
from gridpipe.core.safeyaml import YamlProblem, parse

_MISSING: Any = object()


def load_mapping(path: Path) -> Node:
    """Parse the YAML file at `path`, which must hold a mapping."""
    try:
        data = parse(path.read_text(encoding="utf-8")).data
    except FileNotFoundError:
        raise ConfigError(path, "config file not found; check --config-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read the file ({exc})") from None
    except YamlProblem as exc:
        raise ConfigError(path, exc.message, line=exc.line) from None
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must hold a mapping of keys to values", line=1)
    return Node(path, "", data)


@dataclass(frozen=True)
class Node:
    """One mapping of a config file and its dotted key path."""

    file: Path
    key: str
    data: dict[str, Any]

    def path_of(self, name: str) -> str:
        """Dotted key path of the child `name`."""
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str) -> ConfigError:
        """A ConfigError about the child `name`."""
        return ConfigError(self.file, message, key=self.path_of(name))

    def section(self, name: str, *, required: bool = True) -> Node:
        """The child mapping `name` (empty when absent and not required)."""
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise self.error(name, "required section is missing; add it")
            return Node(self.file, self.path_of(name), {})
        if not isinstance(value, dict):
            raise self.error(name, "must be a mapping of keys to values")
        return Node(self.file, self.path_of(name), value)

    def value(self, name: str, check: Callable[[Any], bool], expect: str, default: Any = _MISSING) -> Any:
        """Child `name` if `check` accepts it, `default` when absent, else a ConfigError saying `expect`."""
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.error(name, f"required key is missing; add it ({expect})")
            return default
        if not check(value):
            raise self.error(name, f"must be {expect} (got {value!r})")
        return value

    def allow_only(self, *names: str) -> None:
        """Refuse keys other than `names` (a typo would otherwise be silently ignored)."""
        for key in self.data:
            if key not in names:
                raise self.error(str(key), f"unknown key; allowed here: {', '.join(names)}")


def is_number(value: Any) -> bool:
    """True for int or float, or text like `1e10` that YAML 1.1 leaves a string (booleans excluded)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_range(value: Any) -> bool:
    """True for a [min, max] pair of numbers with min <= max."""
    ok = isinstance(value, list) and len(value) == 2 and all(is_number(v) for v in value)
    return ok and float(value[0]) <= float(value[1])


def is_name_list(value: Any) -> bool:
    """True for a non-empty list of non-empty strings."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def is_text(value: Any) -> bool:
    """True for a non-empty string."""
    return isinstance(value, str) and bool(value.strip())


def is_int_in(low: int, high: int) -> Callable[[Any], bool]:
    """Predicate: an integer (not a boolean) in [low, high]."""
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def is_number_in(low: float, high: float, *, open_: bool = False) -> Callable[[Any], bool]:
    """Predicate: a number in [low, high] (or in (low, high) with `open_`)."""
    if open_:
        return lambda v: is_number(v) and low < float(v) < high
    return lambda v: is_number(v) and low <= float(v) <= high
