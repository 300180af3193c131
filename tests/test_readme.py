"""README.md starts with the two commands, and .ci/run runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_starts_with_the_main_job_and_the_test_command():
    main_job, tests = _commands()
    assert main_job == "python3 -m pip install . && python3 -m gridpipe demo ./gridpipe-demo"
    assert tests == 'python3 -m pip install -e ".[test]" && python3 -m pytest'


def test_ci_runs_the_readme_test_command():
    _, tests = _commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.replace("python3 ", "python ") in ci
