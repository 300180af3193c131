"""gridpipe: scaffold protopipe-style grid analyses and run them.

Heavy parts (workflow engine, backends, HDF5) are imported lazily so that the
command line starts fast. No module of gridpipe imports this package itself (its `__version__` is
`gridpipe.core.version`'s): the layers and their direction are in README's "Development".
"""

from typing import Any

from gridpipe.core.version import __version__

__all__ = ["Client", "Stage", "Workflow", "__version__"]


def __getattr__(name: str) -> Any:
    """`gridpipe.Workflow`, `gridpipe.Stage` and `gridpipe.Client`, imported on first use."""
    if name in ("Workflow", "Stage"):
        from gridpipe import api

        return getattr(api, name)
    if name == "Client":
        from gridpipe.client import Client

        return Client
    raise AttributeError(name)
