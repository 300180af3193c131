"""The payloads gridpipe ships, registered through the same entry points as a site's own."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import ClassVar

from gridpipe.payloads.contract import OutputCheck, Payload
from gridpipe.payloads.h5check import Hdf5Check


class DemoPayload(Payload):
    """The built-in demo (`python -m gridpipe.payloads.demo`): runs anywhere, no extra software."""

    name: ClassVar[str] = "demo"


class ProtopipePayload(Payload):
    """protopipe's scripts (protopipe-TRAINING, protopipe-MODEL, protopipe-DL2, ...).

    Their exit codes cannot be trusted (a script may end with 0 after an error), but they set the root
    attribute `status` of their output files to "complete" when done: that is checked before registration.
    """

    name: ClassVar[str] = "protopipe"

    def output_check(self, name: str) -> OutputCheck | None:
        """An HDF5 output must open and say `status = "complete"` at its root."""
        if PurePosixPath(name).suffix not in (".h5", ".hdf5"):
            return None
        return Hdf5Check(status="complete")
