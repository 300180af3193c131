"""Checks of a job's HDF5 output before it is registered: it opens, holds the expected nodes, says it is
complete.

The check is ONE program text, `PROGRAM`, used twice: gridpipe's job worker runs it in its own interpreter
(`Hdf5Check.problem`), and a DIRAC job, whose node has no gridpipe, runs it as `python3 -c PROGRAM SPEC
FILE` from the job wrapper (`Hdf5Check.command`) with the payload's own environment. It reads the file with
PyTables, else h5py (CTA's environments have both); when the node's python has neither, it says so and the
job fails: an unchecked output is never registered as good. It keeps to what old Pythons (3.6) accept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROGRAM = r"""
import json, os, sys

def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if isinstance(value, str) else value

def _read_tables(path, nodes):
    import tables
    with tables.open_file(path, mode="r") as h5:
        return [n for n in nodes if n not in h5], getattr(h5.root._v_attrs, "status", None)

def _read_h5py(path, nodes):
    import h5py
    with h5py.File(path, "r") as h5:
        return [n for n in nodes if n not in h5], h5.attrs.get("status")

def _reader():
    for module, read in (("tables", _read_tables), ("h5py", _read_h5py)):
        try:
            __import__(module)
        except ImportError:
            continue
        return read
    return None

def problem(path, nodes=(), status=None):
    name = os.path.basename(path)
    read = _reader()
    if read is None:
        return ("cannot check output %s: this node's python (%s) imports neither tables nor h5py; the "
                "payload's environment must provide one" % (name, sys.executable))
    try:
        missing, found = read(path, list(nodes))
    except Exception as exc:
        return "output %s is not a readable HDF5 file (%s)" % (name, " ".join(str(exc).split())[:200])
    if missing:
        return "output %s lacks %s (an incomplete or foreign file)" % (name, ", ".join(missing))
    found = _text(found)
    if status is not None and found != status:
        return ("output %s has status %r at its root, not %r: the payload did not finish it (its exit code "
                "said it did)" % (name, found, status))
    return None

if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    said = problem(sys.argv[2], spec.get("nodes", ()), spec.get("status"))
    if said:
        print(said)
        sys.exit(1)
"""
"""The check: `problem(path, nodes, status)`; as a script, `SPEC FILE` (SPEC: JSON {"nodes", "status"}),
printing the problem on one line and exiting with 1, or exiting with 0 when the file is fine."""

NODE_PYTHON = "python3"
"""The interpreter a job wrapper runs the check with: the payload environment's own."""


@cache
def _problem() -> Callable[..., str | None]:
    namespace: dict[str, object] = {"__name__": "gridpipe_output_check"}
    exec(compile(PROGRAM, "<gridpipe output check>", "exec"), namespace)  # noqa: S102 - our own fixed text
    return namespace["problem"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Hdf5Check:
    """What an HDF5 output must hold: these nodes, and (when set) this root attribute `status`."""

    nodes: tuple[str, ...] = ()
    status: str | None = None

    def problem(self, path: Path) -> str | None:
        """Why `path` is not a complete output, or None when it is fine (`PROGRAM` in this interpreter)."""
        return _problem()(str(path), self.nodes, self.status)

    def command(self, name: str) -> list[str]:
        """The command line that runs the same check on file `name` where no gridpipe is installed."""
        spec = json.dumps({"nodes": list(self.nodes), "status": self.status}, sort_keys=True)
        return [NODE_PYTHON, "-c", PROGRAM, spec, name]
