"""`status` draws its counts table without rich, character for character as rich draws it: compared with rich
itself, directly and through the real CLI, piped and on a real pseudo-terminal (styles, widths, fallback)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.cli.boxtable import Look, draw
from gridpipe.cli.output import RICH_ENVIRONMENT
from gridpipe.core.models import JobSpec
from gridpipe.core.states import JobStatus, UnitState
from gridpipe.store import JobStore

HEADERS = ("stage", "particle", "planned", "done")
RIGHT = frozenset({2, 3})


def by_rich(title: str, rows: list[list[str]], look: Look) -> str:
    """The table as rich prints it on a console like gridpipe's (`cli.output.console`)."""
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=look.styled,
        color_system="standard" if look.styled else None,
        width=look.width,
        highlight=False,
        soft_wrap=True,
        markup=False,
        emoji=False,
    )
    table = Table(title=title)
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="right" if i in RIGHT else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return out.getvalue()


ROWS = [
    ["training_classification", "proton (stale)", "100000", "·"],
    ["dl2", "(300 units)", "7", "12345678"],
    ["x", "g", "·", "·"],
]


@pytest.mark.parametrize("styled", [False, True])
@pytest.mark.parametrize(
    ("title", "rows"),
    [
        ("ana (local backend)", ROWS),
        ("ana (dirac backend)", []),
        ("a title far wider than the table it stands above, which rich does not centre", ROWS[2:]),
        ("t", [["a" * 40, "b" * 48, "1", "2"]]),
    ],
)
def test_the_table_is_drawn_as_rich_draws_it(title: str, rows: list[list[str]], styled: bool) -> None:
    drawn_at = []
    for width in (1000, 200, 80, 60):
        look = Look(styled=styled, width=width)
        drawn = draw(title, HEADERS, rows, RIGHT, look)
        if drawn is not None:
            assert drawn == by_rich(title, rows, look), (title, width)
            drawn_at.append(width)
    assert drawn_at[:1] == [1000]  # piped (1000 wide): always drawn


def test_tables_rich_would_draw_otherwise_are_left_to_rich() -> None:
    wide = Look(styled=True, width=80)
    rows = [["training_classification", "electron (stale)", "100000", "100000"]]
    fits = draw("t", HEADERS, rows, RIGHT, Look(styled=True, width=65))
    assert fits is not None and len(fits.splitlines()[-1]) == 65
    narrow = Look(styled=True, width=64)
    assert draw("t", HEADERS, rows, RIGHT, narrow) is None  # rich shrinks and wraps the columns
    assert len(by_rich("t", rows, narrow).splitlines()[-1]) == 64
    assert draw("t", HEADERS, [["étape", "g", "1", "2"]], RIGHT, wide) is None  # not ASCII: rich measures
    assert draw("t", HEADERS, [["a\tb", "g", "1", "2"]], RIGHT, wide) is None
    assert draw("ana 分析", HEADERS, [], RIGHT, wide) is None


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An analysis (the default workflow) whose store holds jobs of three stages in several states, a
    stale unit and a stage of 25 units."""
    path = create_analysis(CreateRequest(name="boxes", analyses_dir=tmp_path_factory.mktemp("a"))).path
    specs = [
        JobSpec(name=f"{stage}_{unit}_{i}", stage=stage, unit=unit, commands=(("true",),))
        for stage, units in (
            ("training_energy", ["gamma"]),
            ("training_classification", ["gamma", "proton"]),
            ("dl2", [f"gamma-cut{k}" for k in range(25)]),
        )
        for unit in units
        for i in range(3)
    ]
    with JobStore.for_analysis(path) as store:
        store.add_jobs(specs)
        store.set_status(["training_energy_gamma_0", "dl2_gamma-cut3_1"], JobStatus.FAILED, "exit 1")
        store.set_status(["training_classification_proton_2"], JobStatus.KILLED, "by hand")
        store.set_stage_state("training_classification", "proton", UnitState.STALE, "rerun")
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in (*RICH_ENVIRONMENT, "COLUMNS", "LINES", "NO_COLOR")
    }
    return {**env, "TERM": "xterm-256color", **extra}


def _status(path: Path, env: dict[str, str], columns: int | None = None, *args: str) -> str:
    """`gridpipe status` piped (columns None) or on a pseudo-terminal `columns` wide: its stdout."""
    cmd = [sys.executable, "-m", "gridpipe", "status", "--no-refresh", "-a", str(path), *args]
    if columns is None:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    with subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=child, stderr=subprocess.PIPE
    ) as proc:
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(main)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_status_piped_prints_what_rich_prints(analysis: Path) -> None:
    plain = _status(analysis, _env())
    assert plain == _status(analysis, _env(FORCE_COLOR=""))  # FORCE_COLOR set: rich draws, unstyled
    assert "┃ stage" in plain and "proton (stale)" in plain and "(25 units)" in plain
    assert "\x1b[" not in plain
    assert plain.splitlines()[-1].startswith("stages with over 20 units are summed")


@pytest.mark.parametrize("columns", [200, 100, 60])
def test_status_on_a_terminal_prints_what_rich_prints(analysis: Path, columns: int) -> None:
    drawn = _status(analysis, _env(), columns)
    assert drawn == _status(analysis, _env(FORCE_COLOR="1"), columns)  # rich draws, styled
    assert "\x1b[3mboxes (local backend)\x1b[0m" in drawn and "\x1b[1mst" in drawn
    assert drawn == _status(analysis, _env(COLUMNS=str(columns)), 10)  # COLUMNS wins over the terminal
    table = [line for line in drawn.splitlines() if line[:1] in "┏┃┡│└"]
    widths = {len(line.replace("\x1b[1m", "").replace("\x1b[0m", "")) for line in table}
    assert widths == ({98} if columns > 98 else {max(widths)}) and max(widths) <= columns


def test_a_dumb_terminal_gets_rich_unstyled_table(analysis: Path) -> None:
    dumb = _status(analysis, _env(TERM="dumb"), 120)
    assert "\x1b[" not in dumb and "┃ stage" in dumb
