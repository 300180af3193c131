"""grid.yaml files written before plugins owned their sections keep working: their keys are read from
where they were. This table is history (the keys gridpipe 0.x wrote), not a list of plugins.
"""

from __future__ import annotations

import copy
from typing import Any

MOVED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("dirac",): ("backend", "dirac"),
    ("backend", "max_workers"): ("backend", "local", "max_workers"),
    ("storage", "local_root"): ("storage", "local", "root"),
    ("storage", "dirac_se"): ("storage", "dirac", "se"),
    ("storage", "dirac_command_timeout"): ("storage", "dirac", "command_timeout"),
    ("storage", "dirac_bin_dir"): ("storage", "dirac", "bin_dir"),
}
"""Old key path -> its place now."""


def _get(data: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def migrate_grid(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`data` with old keys moved to their places, and the (old, new) key names that were moved.

    An old key whose new place is also given is left where it is (and reported as unknown there).
    """
    if not any(_get(data, old)[0] for old in MOVED):
        return data, []
    out = copy.deepcopy(data)
    moved: list[tuple[str, str]] = []
    for old, new in MOVED.items():
        found, value = _get(out, old)
        if not found or _get(out, new)[0]:
            continue
        parent = out
        for part in new[:-1]:
            if not isinstance(parent.get(part), dict):
                if part in parent and parent[part] is not None:
                    break
                parent[part] = {}
            parent = parent[part]
        else:
            parent[new[-1]] = value
            _, holder = _get(out, old[:-1])
            del holder[old[-1]]
            moved.append((".".join(old), ".".join(new)))
    return out, moved
