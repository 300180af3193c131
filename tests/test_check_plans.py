"""`check` tells, before anything is submitted, everything `submit` would refuse: each stage is planned."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis

RUN_TEMPLATE = '"{analysis}_OUT_{particle}_{token}"'
COMMAND = "command: [\"{python} -c 'import sys,os;"


def _edit(path: Path, old: str, new: str) -> None:
    workflow = path / "configs" / "workflow.yaml"
    text = workflow.read_text()
    assert old in text, old
    workflow.write_text(text.replace(old, new, 1))


def _list(path: Path, particle: str) -> Path:
    return path / "data" / "simtel" / f"{particle}_in.list"


CASES = {
    "unknown placeholder": (
        lambda p: _edit(p, "{output} {inputs}", "{output} {inputs} {no_such_value}"),
        "no_such_value",
    ),
    "unbalanced quote": (lambda p: _edit(p, "{output} {inputs}", "{output} {inputs} 'oops"), "quot"),
    "empty command line": (
        lambda p: _edit(p, COMMAND, 'command: ["  ", "{python} -c \'import sys,os;'),
        "empty",
    ),
    "job name too long": (
        lambda p: _edit(p, RUN_TEMPLATE, '"{analysis}_' + "X" * 130 + '_{particle}_{token}"'),
        "over DIRAC's 128",
    ),
    "bad sweep value": (
        lambda p: _edit(
            p, "units: [gamma, proton]", "units: [gamma, proton]\n    sweep: {name: cut, values: ['../x']}"
        ),
        "sweep value",
    ),
    "two inputs share a name": (
        lambda p: _list(p, "gamma").write_text("/vo.test/a/same_run1.txt\n/vo.test/b/same_run1.txt\n"),
        "share a file name",
    ),
    "LFN DIRAC cannot carry": (
        lambda p: _list(p, "gamma").write_text("/vo.test/a/x,y_run1.txt\n"),
        "DIRAC's job description cannot carry",
    ),
    "list is a folder": (
        lambda p: (_list(p, "gamma").unlink(), _list(p, "gamma").mkdir()),
        "is a folder",
    ),
    "undeclared input list": (
        lambda p: _edit(p, 'input_list: "{particle}_in"', 'input_list: "{particle}_other"'),
        "does not declare",
    ),
    "merged escapes its folder": (
        lambda p: _edit(p, "data_type: OUT", "data_type: OUT\n    merged: ../../../escape.h5"),
        "must be one name",
    ),
    "job name with a newline": (
        lambda p: _edit(p, RUN_TEMPLATE, '"{analysis}_OUT\\n{particle}_{token}"'),
        "must be one name",
    ),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_analysis(tmp_path_factory.mktemp("ana"), {"gamma": 2, "proton": 2})


def _fresh(pristine: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / pristine.name
    shutil.copytree(pristine, copy, symlinks=True)
    return copy


def test_a_sound_custom_workflow_checks_clean(pristine, tmp_path):
    """No false 'file not found' for configs the custom workflow does not make (analysis.yaml, models)."""
    path = _fresh(pristine, tmp_path)
    proc = gridpipe("check", "-a", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "not found" not in proc.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_reports_what_submit_would_refuse(pristine, tmp_path, case):
    path = _fresh(pristine, tmp_path)
    change, expected = CASES[case]
    change(path)
    checked = gridpipe("check", "-a", str(path))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert expected in checked.stdout, checked.stdout
    assert "internal error" not in checked.stdout + checked.stderr
    submitted = gridpipe("submit", "--stage", "produce", "-a", str(path))
    assert submitted.returncode == 2, submitted.stdout + submitted.stderr
    assert "internal error" not in submitted.stderr
    assert not (path / ".gridpipe" / "local" / "queue.db").exists()  # nothing reached the backend
