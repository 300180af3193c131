"""Commands say what they do (issue 15): dry runs, resubmission of done jobs and staleness, attempts,
a missing package, --json of every job command. Real CLI subprocesses on real analyses."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from engine_helpers import gridpipe, make_analysis, wait_idle
from missing_packages import no_diracx_env

from gridpipe.analysis.stage import Stage
from gridpipe.core.states import JobStatus, UnitState
from gridpipe.workflow.planner import units_of
from gridpipe.workflow.progress import NextStep, UnitProgress, downstream, next_step, unit_complete


def _json(*args: str, env: dict[str, str] | None = None) -> dict:
    result = gridpipe(*args, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _status(path: Path) -> dict:
    return _json("status", "-a", str(path))


# ---- 1. a dry run lists exactly what the same command then submits -------------------------------------


@pytest.mark.parametrize(
    "sequence",
    [
        [["--test"], []],  # the example: --test, then the rest
        [["--max-jobs", "2"], ["--particle", "gamma"], []],
        [["--test", "--particle", "proton"], ["--max-jobs", "1"], ["--test"], ["--particle", "gamma"], []],
        [["-n", "3", "--test"], ["-n", "1", "--max-jobs", "2"], []],  # plans of several sizes meet
    ],
)
def test_a_dry_run_lists_exactly_the_jobs_the_command_then_submits(tmp_path, sequence):
    path = make_analysis(tmp_path, {"gamma": 7, "proton": 3})
    base = ["submit", "--output_type", "TRAINING", "-a", str(path)]
    submitted: list[str] = []
    for variant in sequence:
        before = _status(path)["jobs"]
        plan = _json(*base, *variant, "--dry-run")
        assert [j["name"] for j in _status(path)["jobs"]] == [j["name"] for j in before]  # nothing recorded
        would = [job["name"] for job in plan["jobs"]]
        assert set(plan["already_planned"]) <= set(would)
        done = _json(*base, *variant)
        assert sorted(done["submitted"]) == sorted(would), (variant, plan, done)
        assert not set(would) & set(submitted)  # never twice
        submitted += would
    wait_idle(path).close()
    statuses = {job["status"] for job in _status(path)["jobs"]}
    assert statuses == {"done"}


def test_the_dry_run_says_which_jobs_were_planned_earlier(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 4})
    base = ["submit", "--output_type", "TRAINING", "-a", str(path)]
    assert gridpipe(*base, "--test").returncode == 0  # plans both jobs, submits one
    text = gridpipe(*base, "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "dry run: 1 job(s) would be submitted to stage produce (1 planned earlier)" in text.stdout
    assert "eng_OUT_gamma_run3-run4  (produce/gamma, 2 input(s), planned earlier)" in text.stdout
    real = gridpipe(*base)
    assert "submitted 1 job(s)" in real.stdout


# ---- 2. resubmit: done jobs only on request; what they fed becomes stale; run redoes it --------------


def _run(path: Path) -> dict:
    return _json("run", "-a", str(path), "--poll-interval", "0.1")


def test_resubmit_refuses_done_jobs_without_done(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    assert _run(path)["complete"]
    before = _status(path)
    for names in (["eng_OUT_gamma_run1-run2"], ["eng_OUT_gamma_run1-run2", "eng_OUT_proton_run1-run2"]):
        refused = gridpipe("resubmit", *names, "-a", str(path))
        assert refused.returncode == 2
        assert "already done" in refused.stderr and "--done" in refused.stderr
    refused = gridpipe("resubmit", "eng_SUMMARY", "--failed", "-a", str(path))
    assert refused.returncode == 2
    after = _status(path)
    assert [j["attempts"] for j in after["jobs"]] == [j["attempts"] for j in before["jobs"]]
    assert after["stale"] == {}


def test_rerunning_a_done_job_makes_later_stages_stale_until_run_redoes_them(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    first = _run(path)
    assert first["complete"] and first["stale"] == {}
    summary = Path(path) / "results" / "summary.txt"
    made = summary.stat().st_mtime_ns
    again = _json("resubmit", "eng_OUT_gamma_run1-run2", "--done", "-a", str(path))
    assert list(again["submitted"]) == ["eng_OUT_gamma_run1-run2"]
    assert again["stale"] == {"summarise": ["all"]}
    wait_idle(path).close()
    status = _status(path)
    assert status["stale"] == {"summarise": ["all"]}
    table = gridpipe("status", "--no-refresh", "-a", str(path))
    assert "all (stale)" in table.stdout and "stale:" in table.stdout
    # run does not call it complete: it re-gathers the unit, then runs the stale stage again
    redo = gridpipe("run", "-a", str(path), "--poll-interval", "0.1")
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert "summarise/all: stale, running 1 job(s) again" in redo.stdout
    assert "produce/gamma: downloaded" in redo.stdout
    assert summary.stat().st_mtime_ns > made
    final = _status(path)
    assert final["stale"] == {}
    jobs = {j["name"]: j for j in final["jobs"]}
    assert jobs["eng_SUMMARY"]["attempts"] == 2
    assert jobs["eng_OUT_gamma_run1-run2"]["attempts"] == 2
    assert jobs["eng_OUT_proton_run1-run2"]["attempts"] == 1


def test_rerunning_a_failed_job_marks_nothing_stale(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    result = gridpipe(
        "run", "-a", str(path), "--max-attempts", "1", "--poll-interval", "0.1", env={"FAIL_gamma": "1"}
    )
    assert result.returncode == 1
    report = _json("resubmit", "--failed", "-a", str(path))
    assert report["stale"] == {} and len(report["submitted"]) == 1


def _grid(name: str, needs: tuple[str, ...] = (), models: tuple[str, ...] = ()) -> Stage:
    return Stage(
        name=name,
        needs=list(needs),
        models=list(models),
        units=["gamma", "proton"],
        input_list="{particle}_in",
        data_type=name.upper(),
        job_name="{analysis}_" + name + "_{unit}_{token}",
        output=name + "_{unit}_{token}.h5",
        command=["run {inputs}"],
    )


def _local(name: str, needs: tuple[str, ...] = ()) -> Stage:
    return Stage(
        name=name,
        kind="local",
        needs=list(needs),
        units=["all"],
        outdir=f"out/{name}",
        job_name="{analysis}_" + name,
        command=["run"],
    )


def test_downstream_follows_needs_and_models_transitively():
    a = _grid("a")
    b = _local("b", needs=("a",))
    c = _grid("c", needs=("b",))
    d = _grid("d", models=("b",))
    e = _grid("e")
    f = _local("f", needs=("c", "e"))
    stages = [a, b, c, d, e, f]
    assert [s.name for s in downstream(stages, ["a"])] == ["b", "c", "d", "f"]
    assert [s.name for s in downstream(stages, ["e"])] == ["f"]
    assert [s.name for s in downstream(stages, ["c", "b"])] == ["d", "f"]
    assert downstream(stages, ["f"]) == []


@pytest.mark.parametrize("stage", [_grid("g"), _local("l")])
def test_a_stale_unit_is_never_complete_and_reruns_once_idle(stage):
    (unit,) = units_of(stage)[:1]
    idle = UnitProgress(UnitState.STALE, {JobStatus.DONE: 3})
    busy = UnitProgress(UnitState.STALE, {JobStatus.DONE: 2, JobStatus.RUNNING: 1})
    assert not unit_complete(unit, idle) and not unit_complete(unit, busy)
    assert next_step(unit, idle) is NextStep.RERUN
    assert next_step(unit, busy) is NextStep.NOTHING


# ---- 3. attempts count submissions --------------------------------------------------------------------


def test_attempts_count_every_submission_resubmissions_included(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    assert _run(path)["complete"]
    name = "eng_OUT_proton_run1-run2"
    for expected in (2, 3, 4):
        assert gridpipe("resubmit", name, "--done", "-a", str(path)).returncode == 0
        wait_idle(path).close()
        jobs = {j["name"]: j for j in _status(path)["jobs"]}
        assert jobs[name]["attempts"] == expected
        assert jobs["eng_OUT_gamma_run1-run2"]["attempts"] == 1


def test_attempts_count_retries_and_resubmissions_of_failures(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1})
    failing = gridpipe(
        "run", "-a", str(path), "--max-attempts", "2", "--poll-interval", "0.1", env={"FAIL_gamma": "1"}
    )
    assert failing.returncode == 1
    job = _status(path)["jobs"][0]
    assert job["attempts"] == 2 and job["status"] == "failed"
    assert gridpipe("resubmit", "--failed", "-a", str(path)).returncode == 0
    wait_idle(path).close()
    assert _status(path)["jobs"][0]["attempts"] == 3


# ---- 4. a missing package is not an outage ------------------------------------------------------------


def _broken_diracx(tmp_path: Path) -> dict[str, str]:
    """An environment where `import diracx` fails for real, as without the [dirac] extra."""
    return no_diracx_env(tmp_path)


def _dirac_analysis(tmp_path: Path) -> Path:
    path = make_analysis(tmp_path, {"gamma": 4, "proton": 2})
    grid = path / "configs" / "grid.yaml"
    grid.write_text(grid.read_text().replace('name: "local"', 'name: "dirac"', 1))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--output_type", "TRAINING", "--test"],
        ["submit", "--output_type", "TRAINING"],
        ["submit", "--stage", "produce", "--particle", "proton", "--max-jobs", "1"],
        ["run", "--poll-interval", "0.1"],
    ],
)
def test_a_missing_package_stops_at_once_and_leaves_no_job_queued(tmp_path, args):
    path = _dirac_analysis(tmp_path)
    env = _broken_diracx(tmp_path)
    started = time.monotonic()
    result = gridpipe(*args, "-a", str(path), env=env, timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gridpipe[dirac]" in result.stderr
    assert "backend unavailable" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr
    jobs = _status(path)["jobs"]  # status without the package: the stored state, no internal error
    assert all(job["status"] == "planned" and job["attempts"] == 0 for job in jobs)


def test_the_engine_returns_jobs_to_planned_when_the_backend_cannot_import(tmp_path):
    """Past the preflight (e.g. the package breaks between commands): submit's own guard."""
    path = _dirac_analysis(tmp_path)
    script = f"""
import json, sys
from gridpipe.core.exceptions import MissingPackageError
from gridpipe.service.context import Analysis
from gridpipe.service.jobs import select_stage
from gridpipe.service.planning import plan_units, record_plan
from gridpipe.service.submission import submit
with Analysis.open(__import__("pathlib").Path({str(path)!r})) as an:
    names = record_plan(an, plan_units(an, select_stage(an, "produce", None, False), check_storage=False))
    an.backend  # the plugin is loaded; now the package breaks (its lazy imports fail for real)
    exec(open(sys.argv[1]).read())
    try:
        submit(an, names)
    except MissingPackageError as exc:
        print(json.dumps({{"error": exc.detail, "names": names}}))
"""
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(Path(_broken_diracx(tmp_path)["PYTHONPATH"]) / "sitecustomize.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "gridpipe[dirac]" in out["error"]
    jobs = {j["name"]: j for j in _status(path)["jobs"]}
    assert set(jobs) == set(out["names"]) and len(jobs) == 3
    assert {j["status"] for j in jobs.values()} == {"planned"}
    assert {j["attempts"] for j in jobs.values()} == {0}
    first = jobs[out["names"][0]]
    assert first["reason"].startswith("not submitted:") and "gridpipe[dirac]" in first["reason"]


# ---- --json of kill, resubmit, logs, run; logs of a job that captured nothing -------------------------


def test_every_job_command_speaks_json(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 2})
    ran = _run(path)
    assert set(ran) == {"outcome", "complete", "message", "failed_for_good", "killed", "stages", "stale"}
    assert ran["outcome"] == "complete" and ran["stages"]["produce"]["gamma"] == {"done": 1}
    logs = _json("logs", "eng_OUT_gamma_run1-run2", "-a", str(path))
    assert set(logs) == {"name", "status", "reason", "logs"} and logs["status"] == "done"
    killed = _json("kill", "eng_OUT_gamma_run1-run2", "-a", str(path))
    assert killed == {"killed": [], "not_killed": {"eng_OUT_gamma_run1-run2": "done"}}
    again = _json("resubmit", "eng_SUMMARY", "--done", "-a", str(path))
    assert set(again) == {"submitted", "adopted", "failed", "stale"}


def test_logs_of_a_job_that_failed_while_staging_shows_the_stored_reason(tmp_path):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1})
    lst = path / "data" / "simtel" / "gamma_in.list"
    lst.write_text(lst.read_text().replace("gamma_run2.txt", "gamma_run9.txt"))  # an input that is not there
    failing = gridpipe("run", "-a", str(path), "--max-attempts", "1", "--poll-interval", "0.1")
    assert failing.returncode == 1
    job = _status(path)["jobs"][0]
    assert job["status"] == "failed" and job["reason"]
    shown = gridpipe("logs", job["name"], "-a", str(path))
    assert shown.returncode == 0, shown.stderr
    assert job["reason"] in shown.stdout
    data = _json("logs", job["name"], "-a", str(path))
    assert data["reason"] == job["reason"] and data["status"] == "failed"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dry_run_equals_submit_for_random_sequences_of_variants(tmp_path, seed):
    """In-process, many variants: particles, --test/--max-jobs, -n, one after the other."""
    import random

    from gridpipe.service.context import Analysis
    from gridpipe.service.jobs import select_stage, submit_stage

    rng = random.Random(seed)
    path = make_analysis(tmp_path, {"gamma": 9, "proton": 5})
    seen: set[str] = set()
    for _ in range(6):
        particles = rng.choice([None, ["gamma"], ["proton"], ["gamma", "proton"]])
        limit = rng.choice([None, 1, 2, 3])
        size = rng.choice([None, 1, 2, 4])
        with Analysis.open(path) as an:
            stage = select_stage(an, "produce", None, False)
            dry = submit_stage(an, stage, particles, dry_run=True, limit=limit, n_file_per_job=size)
            real = submit_stage(an, stage, particles, dry_run=False, limit=limit, n_file_per_job=size)
        would = [s.name for s in dry.to_submit]
        assert real.report is not None
        assert sorted(real.report.submitted) == sorted(would), (particles, limit, size)
        assert not seen & set(would)
        seen |= set(would)
    wait_idle(path).close()
