"""The built wheel works on its own: templates and skeleton come from inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; fail the test with its output when it fails."""
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_and_creates_an_analysis_from_another_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("gridpipe-*.whl")

    # A fresh venv without gridpipe; the dependencies are borrowed from the dev venv by a .pth line,
    # which adds that folder to sys.path but does not run its .pth files (so not the editable install).
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin/python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path).strip()
    )
    (site / "zz_dev_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--ignore-installed",
        "--quiet",
        wheel,
        cwd=tmp_path,
    )

    elsewhere = tmp_path / "somewhere else"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GRIDPIPE")}
    probe = (
        "import gridpipe; from gridpipe.core.resources import templates_dir, skeleton_dir; "
        "print(gridpipe.__file__); print(templates_dir()); print(skeleton_dir())"
    )
    module, templates, skeleton = run(python, "-c", probe, cwd=elsewhere, env=env).split("\n")[:3]
    package = site / "gridpipe"
    assert Path(module) == package / "__init__.py"
    assert Path(templates) == package / "_data/templates"
    assert Path(skeleton) == package / "_data/analysis_skeleton"
    assert (package / "_data/templates/configs/grid.yaml.j2").is_file()

    out = run(venv / "bin/gridpipe", "create-analysis", "w", "--json", cwd=elsewhere, env=env)
    assert '"created": true' in out
    analysis = elsewhere / "w"
    assert (
        yaml.safe_load((analysis / "configs/grid.yaml").read_text(encoding="utf-8"))["analysis_name"] == "w"
    )
    assert (analysis / "data/simtel/gamma_energy.list").is_file()
    script = (analysis / "data/download_and_merge.sh").read_text(encoding="utf-8")
    assert str(venv / "bin") in script  # the scripts call the gridpipe of the venv that made them
    run(venv / "bin/gridpipe", "check", cwd=analysis / "data", env=env)
