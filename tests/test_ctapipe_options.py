"""Every option the ctapipe workflow passes to a ctapipe tool exists in that tool's own `--help`: a ctapipe
release that renames an option fails this test instead of the user's jobs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from gridpipe.analysis.skeleton import load_workflow
from gridpipe.core.resources import skeleton_dir

OPTION = re.compile(r"^(?:-\w, )?(--[\w-]+)", re.MULTILINE)


def _used_options() -> dict[str, set[str]]:
    """{tool: options the workflow gives it}."""
    workflow = load_workflow(skeleton_dir() / "workflow_ctapipe.yaml")
    used: dict[str, set[str]] = defaultdict(set)
    for stage in workflow.stages:
        for line in stage.commands_for("ctapipe"):
            argv = shlex.split(line)
            if argv[0].startswith("ctapipe-"):
                used[argv[0]] |= {arg for arg in argv[1:] if arg.startswith("--")}
    return dict(used)


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert os.access(found, os.X_OK), f"{name} is not installed; pip install -e '.[test]' installs ctapipe"
    return found


def test_every_option_the_workflow_uses_is_in_the_tools_help():
    used = _used_options()
    assert set(used) == {
        "ctapipe-process",
        "ctapipe-merge",
        "ctapipe-train-energy-regressor",
        "ctapipe-train-particle-classifier",
        "ctapipe-apply-models",
        "ctapipe-optimize-event-selection",
        "ctapipe-compute-irf",
    }
    missing = {}
    for tool, options in used.items():  # one at a time: each imports all of ctapipe
        done = subprocess.run(
            [_tool(tool), "--help"], capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"{tool} --help failed:\n{done.stderr[-2000:]}"
        offered = set(OPTION.findall(done.stdout))
        if options - offered:
            missing[tool] = sorted(options - offered)
    assert not missing, f"options the workflow uses but the tools do not offer: {missing}"
