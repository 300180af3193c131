"""The ctapipe payload: its workflow and configs, what its exit codes mean, and what its outputs must hold.

ctapipe's tools exit with 0 when done, 1 when the tool failed while running and 2 for a configuration
error (unknown or bad option, missing input, output exists without --overwrite), 130 on Ctrl-C. They log
`... ERROR [ctapipe.TOOL] (tool.run): MESSAGE` lines on stderr, then "Use --help for more info".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar

from gridpipe.payloads.contract import OutputCheck, Payload
from gridpipe.payloads.h5check import Hdf5Check

CTAPIPE_VERSION = "0.28.0"
"""The ctapipe release whose options and `ctapipe-quickstart` configs the workflow and templates follow."""
EVENT_NODES = ("/configuration/instrument/subarray/layout", "/dl1/event/subarray/trigger")
"""What every ctapipe event file (ctapipe-process or ctapipe-merge output) holds."""
EXIT_CONFIGURATION = 2
EXIT_TOOL_FAILURE = 1

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOG_LINE = re.compile(r"\b(ERROR|CRITICAL)\b(?:.*?\)\s*:|\s*\|)\s*(?P<message>.*)$")
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Missing)\b:?\s*.*$")
_NOISE = ("Use --help for more info",)


def last_error_line(stderr: str) -> str | None:
    """The tool's last error message in `stderr`: its last ERROR/CRITICAL log line (without time, level
    and logger), else the last exception line of a traceback, else its last non-empty line."""
    lines = [_ANSI.sub("", line).strip() for line in stderr.replace("\r", "\n").splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        match = _LOG_LINE.search(line)
        if match and not any(noise in line for noise in _NOISE):
            return _short(match.group("message"))
    for line in reversed(lines):
        if _EXCEPTION.match(line):
            return _short(line)
    return _short(lines[-1]) if lines else None


def _short(line: str, limit: int = 300) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class CtapipePayload(Payload):
    """ctapipe's tools (ctapipe-process, ctapipe-merge, ctapipe-train-*, ctapipe-apply-models,
    ctapipe-optimize-event-selection, ctapipe-compute-irf)."""

    name: ClassVar[str] = "ctapipe"
    workflow: ClassVar[str] = "workflow_ctapipe.yaml"

    def template_values(self) -> dict[str, object]:
        """ctapipe's version (named in the configs' headers), the contact stored in output files, and the
        telescope multiplicity the event selection asks for and the reconstructed-energy bins per decade of
        the cut optimisation and the IRFs (ctapipe-quickstart's 4 and 5)."""
        return {
            "ctapipe_version": CTAPIPE_VERSION,
            "contact_email": "",
            "contact_organization": "CTAO",
            "min_multiplicity": 4,
            "reco_energy_bins_per_decade": 5,
        }

    def failure_reason(self, program: str, exit_code: int, stderr: str) -> str | None:
        """Exit code 2: "configuration error", 1: "tool failure", each with the tool's last error line."""
        if exit_code == EXIT_CONFIGURATION:
            what = "configuration error"
        elif exit_code == EXIT_TOOL_FAILURE:
            what = "tool failure"
        else:
            return None
        line = last_error_line(stderr)
        reason = f"{what} ({program} exited with code {exit_code})"
        return f"{reason}: {line}" if line else reason

    def output_check(self, name: str) -> OutputCheck | None:
        """An event file (.h5) must open and hold the subarray layout and the trigger table."""
        if PurePosixPath(name).suffix not in (".h5", ".hdf5"):
            return None
        return Hdf5Check(EVENT_NODES)

    def merge_command(self, inputs: Sequence[Path], output: Path) -> list[str] | None:
        """ctapipe-merge (checks that the files are compatible, keeps the instrument and configuration
        tables once, appends the events)."""
        provenance = output.with_name(output.name + ".provenance.log")
        return [
            "ctapipe-merge",
            "--output",
            str(output),
            "--provenance-log",
            str(provenance),
            "--overwrite",
            *(str(p) for p in inputs),
        ]
