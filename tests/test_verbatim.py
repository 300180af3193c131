"""User text (paths, names, values) prints exactly as given: never read as rich markup, on any output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE = ["[/]", "[b]bold[/b]", "[red]x", "a\\[b]", "[link=http://x]y[/link]", "[dirac]"]


def gridpipe(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridpipe", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_error_messages_repeat_a_path_verbatim(tmp_path: Path, text: str):
    missing = tmp_path / f"no{text}where"
    proc = gridpipe("status", "-a", str(missing))
    assert proc.returncode == 2
    assert str(missing) in proc.stderr, proc.stderr
    assert "MarkupError" not in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("text", HOSTILE[:3])
def test_create_and_check_print_paths_verbatim(tmp_path: Path, text: str):
    parent = tmp_path / f"ana{text}lyses"
    created = gridpipe("create-analysis", "ana", "--analyses-dir", str(parent))
    assert created.returncode == 0, created.stderr
    assert str(parent / "ana") in created.stdout
    checked = gridpipe("check", "-a", str(parent / "ana"))
    assert str(parent / "ana") in checked.stdout
    assert "internal error" not in checked.stdout + checked.stderr
    status = gridpipe("status", "--jobs", "-a", str(parent / "ana"))
    assert status.returncode == 0, status.stderr


def test_a_bad_cli_value_is_repeated_verbatim(tmp_path: Path):
    proc = gridpipe("create-analysis", "ana", "--analyses-dir", str(tmp_path), "--backend", "[b]x[/b]")
    assert proc.returncode == 2
    assert "[b]x[/b]" in proc.stderr


def test_a_reason_with_an_emoji_code_is_shown_as_written(tmp_path: Path):
    from gridpipe.analysis.create import CreateRequest, create_analysis
    from gridpipe.core.models import JobSpec
    from gridpipe.core.states import JobStatus
    from gridpipe.store import JobStore

    path = create_analysis(CreateRequest(name="ana", analyses_dir=tmp_path)).path
    with JobStore.for_analysis(path) as store:
        store.add_jobs([JobSpec(name="j1", stage="dl2", unit="gamma", commands=(("true",),))])
        store.set_status(["j1"], JobStatus.FAILED, "it went :bomb: [b]here")
    status = gridpipe("status", "--no-refresh", "--jobs", "-a", str(path))
    assert status.returncode == 0, status.stderr
    assert "it went :bomb: [b]here" in status.stdout  # rich's emoji codes are off, as its markup
