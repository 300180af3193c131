"""The counts table of `status`, drawn without rich: the characters rich's `Table` prints (a heavy head,
one space of padding, an italic title and a bold header on a terminal), written directly.

Importing rich costs a short command such as `status` about a tenth of its time. `draw` returns None
where rich would draw anything else (a table wider than the screen, whose columns rich shrinks and wraps;
text that is not printable ASCII); the caller then hands the same table to rich. tests/test_boxtable.py
holds the two to the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

BOLD, ITALIC, RESET = "\x1b[1m", "\x1b[3m", "\x1b[0m"
PLAIN_EXTRA = frozenset("·")
"""Characters besides printable ASCII that a cell may hold (one column wide each)."""


class Look(NamedTuple):
    """How the output stream shows text: with styles (a terminal) and how many columns wide."""

    styled: bool
    width: int


def _plain(text: str) -> bool:
    return all(" " <= c <= "~" or c in PLAIN_EXTRA for c in text)


def draw(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int], look: Look
) -> str | None:
    """The table as rich draws it with `look` (columns in `right` right-justified), or None where rich
    would draw it otherwise."""
    cells = [list(headers), *(list(row) for row in rows)]
    if not all(_plain(text) for row in cells for text in row) or not _plain(title):
        return None
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if sum(widths) + 3 * len(widths) + 1 > look.width:
        return None

    def line(left: str, fill: str, cross: str, end: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + end

    def cells_of(row: Sequence[str], style: str) -> list[str]:
        out = []
        for i, (text, w) in enumerate(zip(row, widths, strict=True)):
            text = text.rjust(w) if i in right else text.ljust(w)
            out.append(f"{style} {RESET}{style}{text}{RESET}{style} {RESET}" if style else f" {text} ")
        return out

    bold = BOLD if look.styled else ""
    lines = [
        f"{ITALIC}{title}{RESET}" if look.styled else title,
        line("┏", "━", "┳", "┓"),
        "┃" + "┃".join(cells_of(headers, bold)) + "┃",
        line("┡", "━", "╇", "┩"),
        *("│" + "│".join(cells_of(row, "")) + "│" for row in rows),
        line("└", "─", "┴", "┘"),
    ]
    return "\n".join(lines) + "\n"
