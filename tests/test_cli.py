"""The `gridpipe` command line: version, help, exit codes, one-line errors, JSON output, light start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gridpipe import __version__
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.cli.app import app

HEAVY = ("diracx", "tables", "numpy", "h5py", "matplotlib")

# Runs the real CLI main with argv; at exit, reports the heavy modules imported after start-up
# (site may preload a few, e.g. diracx's import hook, so the baseline is taken first).
PROBE = f"""
import atexit, os, sys
baseline = set(sys.modules)
def report():
    new = sorted(m for m in set(sys.modules) - baseline if m.split(".")[0] in {set(HEAVY)!r})
    sys.stderr.write("HEAVY-MODULES:" + ",".join(new) + "\\n")
atexit.register(report)
if os.environ.get("PROBE_CONTROL"):
    import numpy  # the control run: proves the probe sees a heavy import
sys.argv = ["gridpipe", *sys.argv[1:]]
from gridpipe.cli.app import main
main()
"""

# Registers throw-away commands on the real app, then runs the real main: how failures are reported.
FAILING = """
import sys
from gridpipe.cli.app import app, main
from gridpipe.core.exceptions import GridpipeError

@app.command("fail")
def fail(kind: str) -> None:
    if kind == "operation":
        raise GridpipeError("the backend refused the job; retry later")
    if kind == "bug":
        raise RuntimeError("something\\n  unexpected")
    raise KeyboardInterrupt

sys.argv = ["gridpipe", *sys.argv[1:]]
main()
"""


def run_python(
    code: str, *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run `python -c CODE ARGS...` with this interpreter; return (rc, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *(str(a) for a in args)],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    return create_analysis(CreateRequest(name="cli", analyses_dir=tmp_path / "analyses")).path


def test_version(run_cli, tmp_path: Path) -> None:
    assert run_cli("--version", cwd=tmp_path) == (0, f"gridpipe {__version__}\n", "")


def test_python_dash_m_runs_the_same_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gridpipe", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, f"gridpipe {__version__}\n")


def test_top_level_help_lists_the_commands(run_cli, tmp_path: Path) -> None:
    for flag in ("--help", "-h"):
        rc, out, err = run_cli(flag, cwd=tmp_path)
        assert (rc, err) == (0, "")
        assert out.startswith("Usage: gridpipe")
        for command in ("create-analysis", "check", "schema"):
            assert f"  {command} " in out


def test_no_arguments_prints_the_help_and_exits_2(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli(cwd=tmp_path)
    assert rc == 2
    assert "Usage: gridpipe" in out + err and "create-analysis" in out + err


def test_every_command_has_help() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    assert {"create-analysis", "check", "schema"} <= set(commands)
    runner = CliRunner()
    for name in commands:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert f"Usage: gridpipe {name}" in result.output or f"Usage: root {name}" in result.output, name
        assert commands[name].help, f"{name} has no help text"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["create-analysis", "x", "--bogus"], ["No such option: --bogus", "gridpipe create-analysis --help"]),
        (["no-such-command"], ["No such command", "gridpipe --help"]),
        (["create-analysis", "x", "--backend", "cloud"], ["--backend", "local", "dirac"]),
        (["create-analysis", "x", "--n-file-per-job", "many"], ["--n-file-per-job", "integer"]),
        (["check", "--analysis-path"], ["--analysis-path", "requires an argument"]),
    ],
)
def test_usage_errors_are_one_line_on_stderr_with_exit_2(
    run_cli, tmp_path: Path, args: list[str], words: list[str]
) -> None:
    rc, out, err = run_cli(*args, cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err.startswith("gridpipe: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err
    assert list(tmp_path.iterdir()) == []


def test_operation_failure_is_one_line_and_exit_1(tmp_path: Path) -> None:
    rc, out, err = run_python(FAILING, "fail", "operation", cwd=tmp_path)
    assert (rc, out, err) == (1, "", "gridpipe: error: the backend refused the job; retry later\n")


def test_unexpected_error_is_one_line_without_traceback_unless_debug(tmp_path: Path) -> None:
    rc, out, err = run_python(FAILING, "fail", "bug", cwd=tmp_path)
    assert (rc, out) == (1, "")
    assert err == (
        "gridpipe: error: internal error: RuntimeError: something unexpected "
        "(rerun with --debug for the traceback)\n"
    )
    rc, _, err = run_python(FAILING, "--debug", "fail", "bug", cwd=tmp_path)
    assert rc == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: something\n  unexpected" in err


def test_debug_shows_the_traceback_of_gridpipe_errors(run_cli, tmp_path: Path) -> None:
    rc, _, err = run_cli("--debug", "check", cwd=tmp_path)
    assert rc == 2 and "Traceback (most recent call last)" in err and "AnalysisNotFoundError" in err


def test_interrupt_exits_130(tmp_path: Path) -> None:
    rc, out, _ = run_python(FAILING, "fail", "interrupt", cwd=tmp_path)
    assert (rc, out) == (130, "")


def test_json_output_parses(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli("create-analysis", "j", "--json", cwd=tmp_path)
    assert rc == 0, err
    created = json.loads(out)
    assert created["path"] == str(tmp_path / "j") and created["created"] is True
    assert "configs/grid.yaml" in created["written"]
    rc, out, err = run_cli("check", "--json", cwd=tmp_path / "j")
    assert rc == 0, err
    checked = json.loads(out)
    assert checked["ok"] is True and checked["analysis"] == str(tmp_path / "j")
    assert {f["level"] for f in checked["findings"]} == {"warning"}


def test_markup_like_text_in_values_is_printed_as_it_is(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli("create-analysis", "m", "--analyses-dir", tmp_path / "[bold]x[/]", cwd=tmp_path)
    assert rc == 0, err
    assert f"{tmp_path}/[bold]x[/]/m" in out
    rc, _, err = run_cli("check", "-a", tmp_path / "[red]nowhere", cwd=tmp_path)
    assert rc == 2 and "[red]nowhere" in err


@pytest.mark.parametrize("args", [["--help"], ["check"], ["check", "--help"]])
def test_start_up_imports_no_heavy_module(tmp_path: Path, analysis: Path, args: list[str]) -> None:
    rc, _, err = run_python(PROBE, *args, cwd=analysis / "data")
    assert rc == 0, err
    heavy = err.rsplit("HEAVY-MODULES:", 1)[1].strip()
    assert heavy == "", f"`gridpipe {' '.join(args)}` imported {heavy}"


def test_start_up_probe_sees_heavy_imports(analysis: Path) -> None:
    rc, _, err = run_python(PROBE, "--version", cwd=analysis, env={"PROBE_CONTROL": "1"})
    assert rc == 0, err
    assert "numpy" in err.rsplit("HEAVY-MODULES:", 1)[1].split(",")
