"""The one plugin loader: every entry-point group gridpipe reads, listed here, loaded with the same errors.

A plugin is listed as soon as its distribution declares the entry point, even when its module cannot be
imported (an extra not installed): only loading it fails, with the `pip install` line that fixes it. The
extra is known from the distribution: an extra of the same name as the plugin (`gridpipe[dirac]` provides
the `dirac` backend's dependencies), so a third party's plugin gets the same hint without a line here.
"""

from __future__ import annotations

import difflib
import functools
import sys
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from gridpipe.core.exceptions import MissingPackageError, UsageError

T = TypeVar("T")


class Group(StrEnum):
    """The entry-point groups of gridpipe's plugins."""

    backends = "gridpipe.backends"
    storages = "gridpipe.storages"
    payloads = "gridpipe.payloads"
    splitters = "gridpipe.splitters"

    @property
    def kind(self) -> str:
        """What one plugin of the group is called (`backend`, `storage`, ...)."""
        return self.name.removesuffix("s")


class PluginNotFoundError(UsageError):
    """No plugin of that name is installed in the group."""

    def __init__(self, group: Group, name: str, installed: list[str]) -> None:
        self.group, self.name, self.installed = group, name, installed
        guess = difflib.get_close_matches(name, installed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        super().__init__(
            f"{group.kind} {name!r} is not installed{hint}; installed: {', '.join(installed) or 'none'}"
        )


class PluginUnavailableError(MissingPackageError):
    """The plugin is listed but cannot be loaded (most often: the extra it needs is not installed)."""

    def __init__(self, group: Group, name: str, reason: str, extra: str | None, distribution: str) -> None:
        self.group, self.name, self.reason, self.extra = group, name, reason, extra
        self.distribution = distribution
        install = f'pip install "{distribution}[{extra}]"' if extra else "install its dependencies"
        detail = f"{group.kind} {name!r} needs packages that are not installed ({reason}): {install}"
        super().__init__(reason, install, detail)


class PluginBrokenError(UsageError):
    """The plugin's module imports but raises, or does not name what its group expects."""

    def __init__(self, group: Group, name: str, reason: str) -> None:
        self.group, self.name, self.reason = group, name, reason
        super().__init__(f"{group.kind} {name!r} cannot be loaded: {reason}")


def entry_points_of(group: Group) -> dict[str, EntryPoint]:
    """Installed entry points of `group` by name (the first one wins when two share a name)."""
    return dict(_scan(tuple(sys.path))[group])


@functools.lru_cache(maxsize=4)
def _scan(path: tuple[str, ...]) -> dict[Group, dict[str, EntryPoint]]:
    """One scan of the installed distributions per import path (a scan costs milliseconds)."""
    found: dict[Group, dict[str, EntryPoint]] = {group: {} for group in Group}
    installed = entry_points()  # one pass over the distributions for every group
    for group in Group:
        for ep in installed.select(group=group.value):
            found[group].setdefault(ep.name, ep)
    return found


def rescan() -> None:
    """Forget what was installed (after installing a plugin into this running interpreter)."""
    _scan.cache_clear()


def available(group: Group) -> list[str]:
    """Names of the installed plugins of `group`, sorted (nothing is imported)."""
    return sorted(entry_points_of(group))


def _distribution(ep: EntryPoint) -> tuple[str, list[str]]:
    """Name and extras of the distribution that declares `ep`."""
    dist = ep.dist
    if dist is None:
        return "gridpipe", []
    return dist.metadata["Name"] or "gridpipe", list(dist.metadata.get_all("Provides-Extra") or [])


def extra_for(group: Group, name: str) -> str | None:
    """The extra of the plugin's distribution that installs what it needs (same name as the plugin)."""
    ep = entry_points_of(group).get(name)
    if ep is None:
        return None
    extras = [*ep.extras, *_distribution(ep)[1]]
    return name if name in extras else next(iter(ep.extras), None)


def load(group: Group, name: str) -> Any:
    """The object registered as `name` in `group`; a one-line UsageError for every way that can fail."""
    installed = entry_points_of(group)
    ep = installed.get(name)
    if ep is None:
        raise PluginNotFoundError(group, name, sorted(installed))
    try:
        return ep.load()
    except ImportError as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else None
        if missing is None or missing.split(".")[0] in {"gridpipe", ep.module.split(".")[0]}:
            raise PluginBrokenError(group, name, f"{ep.value}: {exc}") from exc
        reason = f"No module named {missing!r}"
        raise PluginUnavailableError(
            group, name, reason, extra_for(group, name), _distribution(ep)[0]
        ) from exc
    except Exception as exc:  # a plugin failing to import must be one line, never a traceback
        raise PluginBrokenError(group, name, f"{ep.value}: {type(exc).__name__}: {exc}") from exc


def load_class(group: Group, name: str, base: type[T]) -> type[T]:
    """The class registered as `name` in `group`, which must derive from `base` (PluginBrokenError if not)."""
    cls = load(group, name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginBrokenError(group, name, f"it is not a gridpipe {base.__name__} class")
    return cls


def loadable(group: Group) -> dict[str, Any]:
    """Every plugin of `group` that loads, by name (the others are skipped)."""
    found: dict[str, Any] = {}
    for name in available(group):
        try:
            found[name] = load(group, name)
        except UsageError:
            continue
    return found
