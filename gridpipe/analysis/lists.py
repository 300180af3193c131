"""Input file lists: one LFN per line; '#' comments and blank lines ignored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridpipe.analysis.naming import lfn_problem
from gridpipe.core.exceptions import ConfigError


@dataclass(frozen=True)
class ListIssue:
    """A problem on one line of a list file."""

    line: int
    message: str


def scan_list(path: Path) -> tuple[list[str], list[ListIssue], list[ListIssue]]:
    """Read a list file; return (LFNs in order, errors, duplicate warnings)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            path, "input list not found; create it (one LFN per line) or fix configs/grid.yaml inputs"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "input list is not UTF-8 text; write one LFN per line") from None
    except IsADirectoryError:
        raise ConfigError(path, "input list is a folder; give a text file with one LFN per line") from None
    except OSError as exc:
        raise ConfigError(path, f"input list cannot be read ({exc.strerror})") from None
    lfns: list[str] = []
    errors: list[ListIssue] = []
    duplicates: list[ListIssue] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        problem = lfn_problem(line)
        if problem:
            errors.append(ListIssue(number, f"{problem}: {line!r}"))
        elif line in first_seen:
            duplicates.append(ListIssue(number, f"duplicate of line {first_seen[line]}: {line}"))
        else:
            first_seen[line] = number
            lfns.append(line)
    return lfns, errors, duplicates


def read_list(path: Path) -> list[str]:
    """The LFNs of a list file, or a ConfigError naming the first bad line."""
    lfns, errors, _ = scan_list(path)
    if errors:
        raise ConfigError(path, f"{errors[0].message}; write one absolute LFN per line", line=errors[0].line)
    return lfns
