"""The engine speaks the domain and the edges word it: typed errors carry data, the CLI names flags and
commands, the Python API gets neither; `Workflow.main()` is the one command line; `Analysis` closes what it
opened."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis

from gridpipe import Workflow
from gridpipe.cli.messages import error_text, run_text
from gridpipe.core import exceptions as ex
from gridpipe.service.context import Analysis
from gridpipe.service.jobs import job_logs, kill, resubmit, select_stage
from gridpipe.service.orchestrator import RunOutcome, RunReport

CLI_WORDS = ("--", "`", "gridpipe ")

# one of each typed error of the engine, with the CLI's wording of it
EXAMPLES: list[tuple[ex.GridpipeError, str]] = [
    (ex.StageNotFoundError("nope", ["a", "b"]), "--stage 'nope': no such stage in configs/workflow.yaml"),
    (ex.StageChoiceError(None, False, []), "give --output_type TRAINING|DL2 (or --stage NAME)"),
    (ex.StageChoiceError("TRAINING", True, ["x", "y"]), "--output_type TRAINING --estimate-energy matches 2"),
    (ex.NothingChosenError("resubmit"), "name the jobs to resubmit, or pass --failed"),
    (ex.NothingChosenError("kill"), "name the jobs to kill, or pass --stage NAME or --all"),
    (ex.JobNotFoundError(["j1"]), "unknown job(s): j1; see `gridpipe status --jobs`"),
    (ex.RunLockedError(Path("/a"), "42"), "watch it with `gridpipe status`"),
    (ex.DownloadFailedError("dl2/gamma", ["f: bad"]), "rerun `gridpipe download` to retry"),
    (ex.DataTypeNotFoundError("DL9", ["DL2"]), "--data-type 'DL9': no stage writes it; known: DL2"),
    (ex.ParticleNotFoundError(["muon"], "DL2", ["gamma"]), "--particle muon: not a particle of DL2"),
    (
        ex.ModelsMissingError("dl2", "model", "/lfn/m"),
        "run `gridpipe run`, or build them and run `gridpipe upload-models`",
    ),
    (ex.NoModelFilesError(Path("/a/m")), "build the models first (`gridpipe run`)"),
    (
        ex.AnalysisNotFoundError(Path("/x"), given=True, exists=False, marker="m"),
        "--analysis-path /x: no such",
    ),
    (
        ex.AnalysisNotFoundError(Path("/x"), given=False, exists=True, marker="m"),
        "the current directory /x is not inside a gridpipe analysis (no m found); run `gridpipe create-analysis",
    ),
]


@pytest.mark.parametrize(
    ("error", "cli"), EXAMPLES, ids=lambda v: type(v).__name__ if not isinstance(v, str) else ""
)
def test_errors_carry_domain_words_and_the_cli_words_them(error, cli):
    assert not any(word in error.detail for word in CLI_WORDS), error.detail
    assert cli in error_text(error)
    assert error_text(ex.GridpipeError("plain")) == "plain"  # no wording of its own: the detail


def test_run_outcomes_in_domain_and_cli_words():
    stalled = RunReport(RunOutcome.STALLED, ["a", "b"], ["c"])
    assert not stalled.complete
    assert stalled.message.startswith("stopped: 2 job(s) failed for good, 1 killed")
    assert not any(word in stalled.message for word in CLI_WORDS)
    assert "`gridpipe resubmit --failed` and `gridpipe run`" in run_text(stalled)
    stopped = RunReport(RunOutcome.STOPPED)
    assert not any(word in stopped.message for word in CLI_WORDS)
    assert run_text(stopped) == "stopped; run `gridpipe run` again to resume"
    assert RunReport(RunOutcome.COMPLETE).complete


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    return make_analysis(tmp_path, {"gamma": 1, "proton": 1})


def test_the_engine_raises_typed_errors_with_their_data(analysis):
    with Analysis.open(analysis) as an:
        with pytest.raises(ex.NothingChosenError) as nothing:
            resubmit(an, [], failed=False)
        assert nothing.value.action == "resubmit"
        with pytest.raises(ex.NothingChosenError):
            kill(an, [], stage=None, all_jobs=False)
        with pytest.raises(ex.JobNotFoundError) as unknown:
            job_logs(an, "no_such_job")
        assert unknown.value.names == ["no_such_job"]
        with pytest.raises(ex.StageNotFoundError) as stage:
            select_stage(an, "nope", None, False)
        assert stage.value.known == [s.name for s in an.workflow.stages]


def test_the_cli_names_its_flags(analysis):
    done = gridpipe("resubmit", "-a", str(analysis))
    assert (done.returncode, done.stderr) == (
        2,
        "gridpipe: error: name the jobs to resubmit, or pass --failed\n",
    )
    done = gridpipe("submit", "--stage", "nope", "-a", str(analysis))
    assert done.returncode == 2 and "--stage 'nope': no such stage" in done.stderr


def test_the_python_api_gets_domain_words(analysis):
    with Workflow.load(analysis) as wf, pytest.raises(ex.StageNotFoundError) as caught:
        wf.submit("nope", dry_run=True)
    assert caught.value.detail.startswith("no stage 'nope' in the workflow")


def test_workflow_main_is_the_gridpipe_command_line(analysis, capsys):
    with Workflow.load(analysis) as wf:
        assert wf.main(["status", "--json", "--no-refresh"]) == 0
        ours = json.loads(capsys.readouterr().out)
        assert wf.main(["produce", "--dry-run", "--json"]) == 0  # a stage name: `submit --stage NAME`
        plan = json.loads(capsys.readouterr().out)
        assert wf.main(["nonsense"]) == 2
        assert "No such command 'nonsense'" in capsys.readouterr().err
    cli = gridpipe("status", "--json", "--no-refresh", "-a", str(analysis))
    assert cli.returncode == 0, cli.stderr
    assert ours == json.loads(cli.stdout)  # the same JSON document, not a YAML of its own
    cli_plan = gridpipe("submit", "--stage", "produce", "--dry-run", "--json", "-a", str(analysis))
    assert plan == json.loads(cli_plan.stdout)


def test_analysis_closes_what_it_opened_even_on_error(analysis):
    with pytest.raises(RuntimeError), Analysis.open(analysis) as an:
        store, storage = an.store, an.storage
        assert storage.exists([]) == set()
        raise RuntimeError("boom")
    with pytest.raises(sqlite3.ProgrammingError):
        store.count()  # the store's connection was closed on the way out
    assert an.store is not store  # used again, the analysis opens a fresh one
    assert an.store.count() == 0
    an.close()
