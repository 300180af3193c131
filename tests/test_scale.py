"""Many jobs: bulk recording, `submit --test` on a large sweep, and `status` that pages, folds and streams."""

from __future__ import annotations

import json
from pathlib import Path

from engine_helpers import gridpipe

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.core.models import JobSpec
from gridpipe.store import JobStore

LFNS = "/vo.test/MC/scale"


def _analysis(tmp: Path, n_files: int, sweep_values: int = 0) -> Path:
    """An analysis whose one grid stage has `n_files` inputs (one per job), swept over `sweep_values`."""
    sweep = f"    sweep: {{name: cut, values: {list(range(sweep_values))}}}\n" if sweep_values else ""
    name = "_{cut}" if sweep_values else ""
    workflow = tmp / "wf.yaml"
    workflow.write_text(
        "version: 1\n"
        "tree:\n"
        "  directories: [data/simtel, logs]\n"
        "  files: [{path: configs/grid.yaml, template: configs/grid.yaml.j2}]\n"
        "inputs: {gamma_in: data/simtel/gamma_in.list}\n"
        "stages:\n"
        "  - name: scan\n"
        "    units: [gamma]\n"
        '    input_list: "{particle}_in"\n'
        "    data_type: SCAN\n"
        f'    job_name: "{{analysis}}_SCAN_{{particle}}_{{token}}{name}"\n'
        f'    output: "SCAN_{{particle}}{name}_{{token}}.txt"\n'
        "    n_file_per_job: 1\n"
        f"{sweep}"
        '    command: ["touch {output}"]\n'
    )
    path = create_analysis(CreateRequest(name="sc", analyses_dir=tmp, workflow=workflow)).path
    (path / "data" / "simtel" / "gamma_in.list").write_text(
        "".join(f"{LFNS}/gamma_run{i}.txt\n" for i in range(1, n_files + 1))
    )
    return path


def _status_json(path: Path, *args: str) -> dict:
    result = gridpipe("status", "--no-refresh", "--json", "-a", str(path), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_add_jobs_records_new_jobs_in_bulk_with_one_event_each(tmp_path):
    with JobStore(tmp_path / "state.db") as store:
        specs = [JobSpec(name=f"j{i}", stage="s", unit="u", commands=(("true",),)) for i in range(5)]
        assert store.add_jobs(specs[:2]) == ["j0", "j1"]
        assert store.add_jobs(specs) == ["j2", "j3", "j4"]  # existing names are left alone
        assert store.add_jobs([]) == []
        planned = [e.job for e in store.events() if e.kind == "planned"]
        assert planned == ["j0", "j1", "j2", "j3", "j4"]
        assert [j.name for j in store.jobs(limit=2)] == ["j0", "j1"]
        assert store.count(units={"u"}) == 5 and store.count(units={"x"}) == 0
        assert store.count(limit=3) == 3


def test_submit_test_on_a_large_sweep_plans_one_unit_and_a_capped_submit_records_all(tmp_path):
    path = _analysis(tmp_path, 2, sweep_values=300)
    dry = gridpipe("submit", "--stage", "scan", "--test", "--dry-run", "--json", "-a", str(path))
    assert dry.returncode == 0, dry.stderr
    assert [job["unit"] for job in json.loads(dry.stdout)["jobs"]] == ["gamma-cut0"]
    test = gridpipe("submit", "--stage", "scan", "--test", "--json", "-a", str(path))
    assert test.returncode == 0, test.stderr
    assert len(json.loads(test.stdout)["submitted"]) == 1
    jobs = _status_json(path)["jobs"]
    assert len(jobs) == 2 and {job["particle"] for job in jobs} == {"gamma-cut0"}  # one unit, not 300
    again = gridpipe("submit", "--stage", "scan", "--test", "--json", "-a", str(path))
    assert len(json.loads(again.stdout)["submitted"]) == 1  # the unit's other job: nothing new planned
    assert len(_status_json(path)["jobs"]) == 2
    capped = gridpipe("submit", "--stage", "scan", "--max-jobs", "1", "--json", "-a", str(path))
    assert capped.returncode == 0, capped.stderr
    assert len(json.loads(capped.stdout)["submitted"]) == 1
    status = _status_json(path)
    assert len(status["jobs"]) == 600 and len(status["stages"]["scan"]) == 300
    table = gridpipe("status", "--no-refresh", "-a", str(path))
    assert "(300 units)" in table.stdout and "gamma-cut7" not in table.stdout
    every = gridpipe("status", "--no-refresh", "--units", "-a", str(path))
    assert "gamma-cut7" in every.stdout and "(300 units)" not in every.stdout


def test_status_jobs_shows_a_first_screen_and_everything_on_request(tmp_path):
    path = _analysis(tmp_path, 120)
    assert gridpipe("submit", "--stage", "scan", "--max-jobs", "2", "-a", str(path)).returncode == 0
    jobs = _status_json(path)["jobs"]
    assert len(jobs) == 120
    assert list(jobs[0]) == [
        "name", "stage", "particle", "status", "attempts", "backend", "backend_id", "site", "updated", "reason",
        "link",
    ]  # fmt: skip
    first = gridpipe("status", "--no-refresh", "--jobs", "-a", str(path))
    assert first.returncode == 0, first.stderr
    rows = [line for line in first.stdout.splitlines() if "sc_SCAN_gamma_run" in line]
    assert len(rows) == 50
    assert "50 of 120 job(s) shown" in first.stdout
    assert all("planned" not in r for r in rows[:2])  # the submitted jobs come first
    assert all("planned" in r for r in rows[2:])
    streamed = gridpipe("status", "--no-refresh", "--all", "-a", str(path))
    lines = [line.split("\t") for line in streamed.stdout.splitlines() if line.startswith("sc_SCAN")]
    assert len(lines) == 120 and all(len(cells) == 11 for cells in lines)
    assert [cells[0] for cells in lines] == [job["name"] for job in jobs]
    planned = gridpipe("status", "--no-refresh", "--status", "planned", "--limit", "500", "-a", str(path))
    assert sum("sc_SCAN_gamma_run" in line for line in planned.stdout.splitlines()) == 118
    picked = _status_json(path, "--status", "planned", "--limit", "5")
    assert len(picked["jobs"]) == 5 and {job["status"] for job in picked["jobs"]} == {"planned"}
    assert picked["stages"] == _status_json(path)["stages"]


def test_status_json_of_an_analysis_without_jobs_is_valid(tmp_path):
    path = _analysis(tmp_path, 1)
    assert _status_json(path) == {"analysis": str(path), "stages": {}, "stale": {}, "jobs": []}


def test_the_readme_documents_every_key_of_a_job_in_status_json():
    from gridpipe.service.status import JOB_KEYS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("`gridpipe status --json` streams")[1].split("```json\n")[1].split("```")[0]
    documented = json.loads(block)["jobs"][0]
    assert tuple(documented) == JOB_KEYS


def test_run_keeps_a_deep_local_queue_by_default(tmp_path):
    from gridpipe.service.context import Analysis
    from gridpipe.service.orchestrator import run_options

    an = Analysis.open(_analysis(tmp_path, 1))
    try:
        assert run_options(an).max_active == an.backend.capacity >= 1000  # the executor bounds concurrency
        assert run_options(an, max_active=7).max_active == 7
    finally:
        an.close()
