"""gridpipe: scaffold protopipe-style grid analyses and run them.

Heavy parts (workflow engine, backends, HDF5) are imported lazily so that the
command line starts fast.
"""

from typing import Any

from gridpipe.core.version import __version__

__all__ = ["Stage", "Workflow", "__version__"]


def __getattr__(name: str) -> Any:
    """`gridpipe.Workflow` and `gridpipe.Stage`, imported on first use."""
    if name in ("Workflow", "Stage"):
        from gridpipe import api

        return getattr(api, name)
    raise AttributeError(name)
