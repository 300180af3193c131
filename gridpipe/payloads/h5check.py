"""Checks of a job's HDF5 output before it is registered: it opens, holds the expected nodes, says it is
complete. Plain PyTables, so that the check runs wherever gridpipe does (the payload's own software need
not be importable)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def hdf5_problem(path: Path, nodes: Sequence[str] = (), status: str | None = None) -> str | None:
    """Why `path` is not a complete output: it does not open as HDF5, lacks one of `nodes`, or (with
    `status`) its root attribute `status` is not that value. None when it is fine."""
    import tables  # here, not at the top: payloads load at start-up (`check`, `--help`), PyTables is heavy

    try:
        with tables.open_file(path, mode="r") as h5:
            missing = [node for node in nodes if node not in h5]
            if missing:
                return f"output {path.name} lacks {', '.join(missing)} (an incomplete or foreign file)"
            if status is not None:
                found = getattr(h5.root._v_attrs, "status", None)
                if isinstance(found, bytes):
                    found = found.decode(errors="replace")
                if found != status:
                    return (
                        f"output {path.name} has status {found!r} at its root, not {status!r}: the payload "
                        "did not finish it (its exit code said it did)"
                    )
    except (OSError, tables.HDF5ExtError) as exc:
        return f"output {path.name} is not a readable HDF5 file ({' '.join(str(exc).split())[:200]})"
    return None
