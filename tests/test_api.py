"""The Python API: a user stage with a parameter sweep, run from Python and as a command line."""

from __future__ import annotations

import pytest
from engine_helpers import make_analysis

from gridpipe import Stage, Workflow
from gridpipe.core.exceptions import UsageError


def _scan_stage() -> Stage:
    return Stage(
        name="scan",
        needs=["produce"],
        units=["gamma"],
        input_list="{particle}_in",
        data_type="SCAN",
        job_name="{analysis}_SCAN_{particle}_{cut}_{token}",
        output="SCAN_{particle}_{cut}_{token}.txt",
        sweep={"name": "cut", "values": [1, 2]},
        n_file_per_job=3,
        command=["{python} -c 'import sys; open(sys.argv[1], \"w\").write(sys.argv[2])' {output} {cut}"],
    )


def test_user_stage_with_sweep_runs_from_python(tmp_path, capsys):
    path = make_analysis(tmp_path, {"gamma": 3, "proton": 1})
    wf = Workflow.load(path)
    wf.add(_scan_stage())
    assert wf.stage_main("scan", ["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "eng_SCAN_gamma_1_run1-run3" in printed and "eng_SCAN_gamma_2_run1-run3" in printed
    report = wf.run(poll_interval=0.1)
    assert report.complete, report.message
    counts = wf.status()
    assert counts["scan"] == {"gamma-cut1": {"done": 1}, "gamma-cut2": {"done": 1}}
    out = path / "data" / "SCAN" / "gamma" / "SCAN_gamma_2_run1-run3.txt"
    assert out.read_text() == "2"
    wf.analysis.close()


def test_saved_workflow_is_seen_by_a_fresh_load_and_cli(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1, "proton": 1})
    wf = Workflow.load(path)
    wf.add(_scan_stage())
    wf.save()
    wf.analysis.close()
    again = Workflow.load(path)
    assert [s.name for s in again.stages] == ["produce", "summarise", "scan"]
    assert again.main(["scan", "--dry-run"]) == 0
    assert again.main(["nonsense"]) == 2
    again.analysis.close()


def test_stage_with_unknown_need_is_refused(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 1})
    wf = Workflow.load(path)
    bad = _scan_stage().model_copy(update={"needs": ["nope"]})
    with pytest.raises(ValueError, match="needs 'nope'"):
        wf.add(bad)
    with pytest.raises(UsageError, match="unknown placeholder"):
        wf.add(_scan_stage().model_copy(update={"name": "scan2", "job_name": "{analysis}_{oops}_{token}"}))
        wf.submit("scan2", dry_run=True)
    wf.analysis.close()
