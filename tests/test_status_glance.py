"""`status` reads the three names it shows from the config files as written and validates the configs only
when it asks a backend; every command that acts validates them first."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import gridpipe

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.glance import Glance, glance
from gridpipe.core.exceptions import ConfigError
from gridpipe.core.models import JobSpec
from gridpipe.service.context import Analysis
from gridpipe.store import JobStore


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    """The default analysis, with two planned jobs of its dl2 stage."""
    path = create_analysis(CreateRequest(name="glimpse", analyses_dir=tmp_path)).path
    with JobStore.for_analysis(path) as store:
        store.add_jobs(
            [JobSpec(name=f"dl2_{i}", stage="dl2", unit="gamma", commands=(("true",),)) for i in range(2)]
        )
    return path


def _edit_grid(path: Path, old: str, new: str) -> None:
    grid = path / "configs" / "grid.yaml"
    text = grid.read_text()
    assert old in text
    grid.write_text(text.replace(old, new, 1))


def test_the_names_as_written_are_the_validated_ones(analysis: Path) -> None:
    with Analysis.open(analysis) as an:  # validated
        names = Glance(an.grid.analysis_name, an.grid.backend.name, tuple(s.name for s in an.workflow.stages))
        assert an.glance() == names
    assert glance(analysis) == names and names.analysis == "glimpse" and len(names.stages) == 6
    with Analysis.open(analysis, validated=False) as an:
        assert an.glance() == glance(analysis) and "grid" not in an.__dict__
        assert an.grid.analysis_name == "glimpse"  # validated on first use


def test_status_of_an_analysis_with_a_wrong_key_shows_what_is_stored(analysis: Path) -> None:
    _edit_grid(analysis, "backend:\n", "backend:\n  colour: blue\n")
    status = gridpipe("status", "-a", str(analysis))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("glimpse (local backend)\n") and "│ dl2 " in status.stdout
    assert gridpipe("status", "--json", "-a", str(analysis)).returncode == 0
    for command in (["check"], ["submit", "--stage", "dl2", "--dry-run"]):  # commands that act validate
        refused = gridpipe(*command, "-a", str(analysis))
        assert refused.returncode == 2, refused.stdout
        assert "grid.yaml" in refused.stderr + refused.stdout and "colour" in refused.stderr + refused.stdout


def test_names_that_are_not_text_are_validated_and_named(analysis: Path) -> None:
    _edit_grid(analysis, '  name: "local"', '  name: ["local"]')
    assert glance(analysis) is None
    status = gridpipe("status", "-a", str(analysis))
    assert status.returncode == 2 and status.stdout == ""
    assert "grid.yaml" in status.stderr and "backend.name" in status.stderr, status.stderr


def test_a_missing_config_file_is_the_error_it_always_was(analysis: Path) -> None:
    (analysis / "configs" / "workflow.yaml").unlink()
    with pytest.raises(ConfigError, match=r"workflow\.yaml"):
        glance(analysis)
    status = gridpipe("status", "-a", str(analysis))
    assert status.returncode == 2 and "workflow.yaml: file not found" in status.stderr, status.stderr


def test_status_validates_the_configs_when_it_asks_a_backend(analysis: Path) -> None:
    with JobStore.for_analysis(analysis) as store:  # a job the local backend holds
        store.begin_attempts(["dl2_0"], "local")
        store.confirm_submitted({"dl2_0": "1"})
    _edit_grid(analysis, "backend:\n", "backend:\n  colour: blue\n")
    asked = gridpipe("status", "-a", str(analysis))
    assert asked.returncode == 2 and "grid.yaml" in asked.stderr and "colour" in asked.stderr, asked.stderr
    stored = gridpipe("status", "--no-refresh", "-a", str(analysis))
    assert stored.returncode == 0 and "│ dl2 " in stored.stdout, stored.stderr


_PROBE = (
    "import sys\n"
    "from gridpipe.cli.app import run_cli\n"
    "code = run_cli(sys.argv[1:])\n"
    "print('LOADED', *(m for m in ('gridpipe.analysis.config',) if m in sys.modules), code)\n"
)


def test_a_status_with_no_job_at_a_backend_does_not_load_the_config_models(
    analysis: Path,
) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "status", "-a", str(analysis)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert done.stdout.splitlines()[-1] == "LOADED 0", done.stdout + done.stderr
    assert "glimpse" in done.stdout and "dl2" in done.stdout
