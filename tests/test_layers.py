"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and an arrow running back up, a loop
or logic importing the CLI library breaks them: lint-imports runs on a copy of the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy shadows the installed gridpipe
    code = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "gridpipe", out / "gridpipe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", out / "pyproject.toml")
    return out


def _with_line(tree: Path, module: str, line: str, tmp_path: Path) -> Path:
    """A copy of `tree` where `module` (a path below it) also imports `line`."""
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return copy


def test_the_package_keeps_its_contracts(tree):
    done = _lint(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the orchestrator's pure decisions reaching up into the engine
        ("gridpipe/workflow/progress.py", "import gridpipe.service.context", "Layers"),
        # core importing anything of gridpipe
        ("gridpipe/core/states.py", "from gridpipe.store import JobStore", "Layers"),
        # two siblings that must not know each other
        ("gridpipe/storage/sync.py", "import gridpipe.workflow.planner", "Layers"),
        # the loops removed in issue 9 coming back
        ("gridpipe/analysis/skeleton.py", "import gridpipe.workflow.planner", "Layers"),
        ("gridpipe/workflow/policy.py", "import gridpipe.store", "Workflow decisions are pure"),
        ("gridpipe/cli/job_cmds.py", "import gridpipe.cli.app", "The command line"),
        ("gridpipe/store/schema.py", "import gridpipe.store.jobstore", "No import loop"),
        # logic speaking to the terminal
        ("gridpipe/service/gather.py", "import rich.console", "Logic never imports"),
    ],
)
def test_an_arrow_back_up_breaks_the_build(tree, tmp_path, module, line, broken):
    done = _lint(_with_line(tree, module, line, tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [text for text in done.stdout.splitlines() if " BROKEN" in text]
    assert any(text.startswith(broken) for text in lines), done.stdout
