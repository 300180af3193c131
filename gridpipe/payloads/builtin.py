"""The payloads gridpipe ships, registered through the same entry points as a site's own."""

from __future__ import annotations

from typing import ClassVar

from gridpipe.payloads.contract import Payload


class DemoPayload(Payload):
    """The built-in demo (`python -m gridpipe.payloads.demo`): runs anywhere, no extra software."""

    name: ClassVar[str] = "demo"


class ProtopipePayload(Payload):
    """protopipe's scripts (protopipe-TRAINING, protopipe-MODEL, protopipe-DL2, ...)."""

    name: ClassVar[str] = "protopipe"


class CtapipePayload(Payload):
    """ctapipe's tools (ctapipe-process, ctapipe-train-*, ctapipe-apply-models, ...)."""

    name: ClassVar[str] = "ctapipe"
