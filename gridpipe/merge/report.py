"""What a merge did: the result dataclasses returned by `merge_files`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

MergeMode = Literal["copy", "vds"]


@dataclass(frozen=True)
class SkippedInput:
    """An input left out of the merge and why (empty, corrupt or unreadable)."""

    path: Path
    reason: str


@dataclass
class MergeReport:
    """The merged file, what went into it, what was skipped, and how the data was moved."""

    output: Path
    mode: MergeMode
    inputs: list[Path] = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    chunks_copied: int = 0
    rows_recoded: int = 0
    removed_inputs: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (
            f"{self.output.name}: {len(self.inputs)} inputs{skipped}, {len(self.rows)} datasets, "
            f"{sum(self.rows.values())} rows, {self.bytes_in / 1e6:.1f} MB -> {self.bytes_out / 1e6:.1f} MB "
            f"({self.mode})"
        )
