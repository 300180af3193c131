"""The one YAML reader: safe tags only, nesting depth and alias expansion bounded, duplicate keys refused.

Every YAML file gridpipe reads goes through `parse`, so a "billion laughs" document (aliases of aliases)
or a deeply nested one is refused in time and memory proportional to its text, before anything walks
or validates the expanded structure. The result carries the 1-based line of every key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted (configs need a handful)."""
MAX_NODES = 200_000
"""Most values a document may hold once every alias is expanded."""

KeyPath = tuple[str | int, ...]
_LOADER: Any = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)  # libyaml when present: a 10,000-value sweep in ms


class YamlProblem(Exception):
    """The text is not acceptable YAML: `message` says why (and the fix), `line` where (1-based) if known."""

    def __init__(self, message: str, line: int | None = None, path: KeyPath | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.path = message, line, path


@dataclass(frozen=True)
class Document:
    """A parsed document: its data and the line of every key path."""

    data: Any
    lines: dict[KeyPath, int]


def parse(text: str) -> Document:
    """Parse one YAML document safely; YamlProblem for bad syntax, too deep, too large or duplicate keys."""
    try:
        _check_depth(text)
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return Document(None, {})
            _check_size(root)
            lines = _line_map(root)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlProblem(
            f"invalid YAML: {problem}; fix the syntax", mark.line + 1 if mark else None
        ) from None
    return Document(data, lines)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, from the parser's events (no recursion, nothing built)."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlProblem(
                    f"nested deeper than {MAX_DEPTH} levels; flatten the structure",
                    event.start_mark.line + 1,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_size(root: yaml.Node) -> None:
    """Refuse documents whose aliases expand to more than MAX_NODES values, or refer to themselves."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YamlProblem("an alias refers to a value that contains it; remove the loop", _line(node))
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        open_nodes.discard(key)
        if total > MAX_NODES:
            raise YamlProblem(
                f"the aliases (*name) expand to more than {MAX_NODES} values; write the values out "
                "or use fewer aliases",
                _line(node),
            )
        sizes[key] = total
        return total

    size(root)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _line_map(root: yaml.Node) -> dict[KeyPath, int]:
    """The line of every key path; duplicate keys refused (YAML would silently keep the last value)."""
    lines: dict[KeyPath, int] = {}

    def walk(node: yaml.Node, path: KeyPath) -> None:
        lines.setdefault(path, _line(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
                if key in seen:
                    raise YamlProblem(
                        f"duplicate key (first on line {seen[key]}); keep only one",
                        _line(key_node),
                        (*path, key),
                    )
                seen[key] = _line(key_node)
                walk(value_node, (*path, key))
                lines[(*path, key)] = _line(key_node)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(root, ())
    return lines
