"""The `dirac` backend against a real DiracX 0.7.0 server on 127.0.0.1 (the session fixture `diracx`).

The admin token plays the grid (`walk` moves jobs along DIRAC's real status chain); gridpipe talks to
the server only through diracx-client, with the user's token, as it would in production. Jobs walked
to Done get their outputs put into the local storage first, as a grid job would have uploaded them.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("diracx.testing")
pytest.importorskip("diracx.api")
pytest.importorskip("moto")

import yaml
from DIRACCommon.Core.Utilities.ClassAd.ClassAdLight import ClassAd
from DIRACCommon.WorkloadManagementSystem.DB.JobDBUtils import extractJDL
from diracx_server import free_port, search_all
from engine_helpers import gridpipe, make_analysis

from gridpipe.analysis.config import GridConfig
from gridpipe.analysis.configio import load_model
from gridpipe.backends.dirac import DiracBackend
from gridpipe.backends.dirac_script import decode_steps
from gridpipe.core.exceptions import BackendError, UsageError
from gridpipe.core.models import JobSpec
from gridpipe.core.states import FINAL_STATES, JobStatus
from gridpipe.service.context import Analysis
from gridpipe.service.orchestrator import Orchestrator, RunOptions
from gridpipe.testing.backend_conformance import BackendConformance

WORKFLOW = """\
version: 1
tree:
  directories: [data/simtel, data/OUT]
  files:
    - {path: configs/grid.yaml, template: configs/grid.yaml.j2}
inputs:
  gamma_in: data/simtel/gamma_in.list
stages:
  - name: produce
    output_type: TRAINING
    units: [gamma]
    input_list: "{particle}_in"
    data_type: OUT
    job_name: "{analysis}_OUT_{particle}_{token}"
    output: "OUT_{particle}_{mode}_{token}.txt"
    sandbox: [configs/grid.yaml]
    command: ["{python} -c 'import sys; open(sys.argv[1], \\"w\\").write(\\"ok\\")' {output} {inputs}"]
"""


# ---- helpers ------------------------------------------------------------------------------------
def dirac_analysis(tmp_path: Path, server, name: str, n_files: int, *, env_connection: bool = False, **dirac):
    """An analysis on the dirac backend with `n_files` inputs (one per job); connection in grid.yaml or env."""
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(WORKFLOW)
    path = make_analysis(tmp_path, {"gamma": n_files}, name=name, n_file_per_job=1, workflow=workflow)
    grid_file = path / "configs" / "grid.yaml"
    data = yaml.safe_load(grid_file.read_text())
    data["backend"]["name"] = "dirac"
    section = data["backend"].setdefault("dirac", DiracBackend.settings_model().model_dump(mode="json"))
    if not env_connection:
        section.update(url=server.url, credentials_path=str(server.user_credentials))
    section.update({"retries": 1, "backoff": 0.05, "backoff_max": 0.2, **dirac})
    grid_file.write_text(yaml.safe_dump(data))
    return path


def with_dirac(grid: GridConfig, **section) -> GridConfig:
    """`grid` with these keys of its `backend.dirac` section changed."""
    backend = grid.backend.model_dump()
    backend["dirac"] = {**backend.get("dirac", {}), **section}
    return GridConfig.model_validate({**grid.model_dump(), "backend": backend})


def cli_env(server, credentials: Path | None = None) -> dict[str, str]:
    return {"DIRACX_URL": server.url, "DIRACX_CREDENTIALS_PATH": str(credentials or server.user_credentials)}


def backend_of(path: Path) -> DiracBackend:
    return DiracBackend.from_config(load_model(GridConfig, path / "configs" / "grid.yaml"), path)


def on_server(server, path: Path) -> list[dict]:
    """Every job of the analysis's JobGroup on the server (seen by the admin)."""
    backend = backend_of(path)
    return server.search_by_names(backend.job_group)


def status_json(path: Path, server, credentials: Path | None = None) -> dict:
    result = gridpipe("status", "--json", "-a", str(path), env=cli_env(server, credentials))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def put_outputs(path: Path, names) -> None:
    """Put the outputs of these jobs into the local storage, as grid jobs would have uploaded them."""
    an = Analysis.open(path)
    try:
        src = path / ".gridpipe" / "scratch" / "output.txt"
        src.write_text("ok")
        for job in an.store.get(list(names)).values():
            for lfn in job.spec.outputs:
                an.storage.put(src, lfn)
    finally:
        an.close()


def jdl_posts(server) -> int:
    return server.server_log.read_text(errors="replace").count('"POST /api/jobs/jdl ')


def _search_posts(server) -> int:
    return server.server_log.read_text(errors="replace").count('"POST /api/jobs/search?')


def stored_jdl(server, job_id: int) -> ClassAd:
    """The JDL the server stored for a job (no API returns it in 0.7.0; read from its job database)."""
    db = sqlite3.connect(server.base_dir / "db" / "jobdb.db")
    try:
        (text,) = db.execute("SELECT JDL FROM JobJDLs WHERE JobID = ?", (job_id,)).fetchone()
    finally:
        db.close()
    return ClassAd(extractJDL(text))


def spec(name: str, commands, *, inputs=(), outputs=(), sandbox=(), env=None) -> JobSpec:
    return JobSpec(
        name=name,
        stage="produce",
        unit="gamma",
        commands=tuple(tuple(c) for c in commands),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        sandbox=tuple(sandbox),
        env=env or {},
    )


# ---- the JDL and the wrapper ------------------------------------------------------------------------
HOSTILE_ARGS = [
    "sp ace",
    "it's",
    'double "quote"',
    "back\\slash\\",
    "semi;colon",
    "com,ma",
    "[br]{ace}",
    "new\nline",
    "$(touch pwned)",
    "`touch pwned`",
    "${HOME}",
    "%j",
    "",
    "-n",
    "*",
    "é ✓",
    "tab\there",
    "#hash",
    "&|<>!",
]
RECORDER = "import json, os, sys; json.dump([sys.argv[1:], os.environ['GP_VALUE']], open('argv.json', 'w'))"
ALLOWED_NAME = "dx hostile 'name' $x\\y é+:@=#&|!~^"


def test_hostile_values_round_trip_through_the_real_server(diracx, tmp_path):
    """Argv and env values DIRAC's JDL cannot hold arrive intact; names with odd but legal characters too."""
    path = dirac_analysis(tmp_path, diracx, "dxhostile", 1)
    backend = backend_of(path)
    job = spec(
        ALLOWED_NAME,
        [[sys.executable, "-c", RECORDER, *HOSTILE_ARGS]],
        sandbox=[str(path / "configs" / "grid.yaml")],
        env={"GP_VALUE": "a 'b' \"c\" $d;e"},
    )
    try:
        ids = backend.submit([job])
    finally:
        backend.close()
    job_id = int(ids[ALLOWED_NAME])
    (row,) = diracx.search_by_names(backend.job_group)
    assert (row["JobID"], row["JobName"], row["JobGroup"]) == (job_id, ALLOWED_NAME, backend.job_group)
    jdl = stored_jdl(diracx, job_id)
    assert jdl.getAttributeString("JobName") == ALLOWED_NAME
    assert jdl.getAttributeString("Executable") == "gridpipe_job.sh"
    (pfn,) = jdl.getListFromExpression("InputSandbox")
    assert pfn.startswith("SB:SandboxSE|/S3/")
    # on the worker node: the sandbox in the working directory, then `Executable Arguments` through a shell
    work = tmp_path / "worker node"
    work.mkdir()
    download_as(diracx, diracx.user_credentials, pfn, work)
    assert sorted(p.name for p in work.iterdir()) == ["grid.yaml", "gridpipe_job.sh"]
    command = f"./gridpipe_job.sh {jdl.getAttributeString('Arguments')}"
    run = subprocess.run(["bash", "-c", command], cwd=work, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    argv, value = json.loads((work / "argv.json").read_text())
    assert argv == HOSTILE_ARGS
    assert value == "a 'b' \"c\" $d;e"
    assert not (work / "pwned").exists()


def download_as(server, credentials: Path, pfn: str, dest: Path) -> None:
    import asyncio

    from diracx.api.jobs import download_sandbox

    async def fetch():
        async with server.async_client(credentials) as client:
            await download_sandbox(pfn, dest, client=client)

    asyncio.run(fetch())


def test_values_the_jdl_cannot_carry_are_refused_before_any_job_exists(diracx, tmp_path):
    """DIRAC's JDL has no escapes (checked on the server below); such names stop the whole submission."""
    path = dirac_analysis(tmp_path, diracx, "dxrefused", 1)
    backend = backend_of(path)
    good = spec("dxrefused_fine", [["true"]])
    try:
        for bad in ['quote"d', "semi;colon", "com,ma", "br[acket", "per%jcent", "new\nline"]:
            with pytest.raises(UsageError, match=r"JobName .* DIRAC's JDL cannot carry"):
                backend.submit([good, spec(bad, [["true"]])])
    finally:
        backend.close()
    assert on_server(diracx, path) == []
    # what the server does with such values, which is why they are refused rather than "escaped"
    from azure.core.exceptions import HttpResponseError

    group = backend.job_group
    jdl = 'Executable = "true"; JobName = "{name}"; JobGroup = "{group}";'
    with diracx.client(diracx.user_credentials) as client:
        with pytest.raises(HttpResponseError, match="JDL syntax error"):
            client.jobs.submit_jdl_jobs([jdl.format(name='a\\"b', group='g\\"h')])
        names = ['a\\"b', "a;b", "a,b", "a\\b"]
        # one call each: in a bulk call the server stores every job's attributes with the columns of the
        # first job (one executemany), so a first job that lost its name takes every name with it
        ids = [client.jobs.submit_jdl_jobs([jdl.format(name=n, group=group)])[0].job_id for n in names]
        search = [{"parameter": "JobID", "operator": "in", "values": ids}]
        rows = search_all(client, search, ["JobID", "JobName", "JobGroup"])
    by_id = {row["JobID"]: (row["JobName"], row["JobGroup"]) for row in rows}
    (quote, semicolon, comma, backslash) = [by_id[job_id] for job_id in ids]
    assert quote == ("Unknown", "00000000")  # `\"` ended the string: name and group lost
    assert semicolon[0] != "a;b"  # `;` cut the value
    assert comma[0] != "a,b"  # `,` made a list of the value (mangled)
    assert backslash == ("a\\b", group)  # a backslash is an ordinary character: escaping it would double it


def test_jdl_of_a_job_has_every_field_from_grid_yaml(diracx, tmp_path):
    path = dirac_analysis(
        tmp_path,
        diracx,
        "dxfields",
        2,
        output_se="CC-IN2P3-USER",
        cpu_time=3600,
        priority=3,
        tags=["8Processors"],
    )
    grid_file = path / "configs" / "grid.yaml"
    data = yaml.safe_load(grid_file.read_text())
    data["grid"]["banned_sites"] = ["LCG.Bad.org", "LCG.Worse.org"]
    grid_file.write_text(yaml.safe_dump(data))
    result = gridpipe("submit", "--output_type", "TRAINING", "--dry-run", "--json", "-a", str(path))
    assert result.returncode == 0, result.stderr
    first = JobSpec.from_json(json.loads(result.stdout)["jobs"][0])
    backend = backend_of(path)
    ad = ClassAd(backend.render_jdl(first))
    assert ad.getAttributeString("JobName") == first.name
    assert ad.getAttributeString("JobGroup") == backend.job_group and len(backend.job_group) <= 32
    assert backend.job_group.startswith("dxfields-")
    assert ad.getListFromExpression("InputSandbox") == ["gridpipe_job.sh", "grid.yaml"]
    assert ad.getListFromExpression("InputData") == [f"LFN:{lfn}" for lfn in first.inputs]
    assert ad.getListFromExpression("OutputData") == [f"LFN:{lfn}" for lfn in first.outputs]
    assert ad.getAttributeString("OutputPath") == "cta_analyses/dxfields/data/OUT/gamma"
    assert ad.getAttributeString("OutputSE") == "CC-IN2P3-USER"
    assert ad.getListFromExpression("BannedSites") == ["LCG.Bad.org", "LCG.Worse.org"]
    assert ad.getListFromExpression("OutputSandbox") == ["std.out", "std.err"]
    assert ad.getListFromExpression("Tags") == ["8Processors"]
    assert (ad.getAttributeInt("CPUTime"), ad.getAttributeInt("Priority")) == (3600, 3)
    assert decode_steps(ad.getAttributeString("Arguments")).splitlines()[1:] == [
        "payload demo",
        f"require_input {first.inputs[0].rsplit('/', 1)[1]}",
        'step 1 python3 -c \'import sys; open(sys.argv[1], "w").write("ok")\' '
        f"{first.outputs[0].rsplit('/', 1)[1]} {first.inputs[0].rsplit('/', 1)[1]}",
        f"require_output {first.outputs[0].rsplit('/', 1)[1]}",
    ]
    # the same JDL is accepted by the real server as it is
    with diracx.client(diracx.user_credentials) as client:
        (inserted,) = client.jobs.submit_jdl_jobs([backend.render_jdl(first, ["SB:SandboxSE|/S3/x/y"])])
    assert stored_jdl(diracx, inserted.job_id).getAttributeString("OutputSE") == "CC-IN2P3-USER"


def test_config_values_dirac_cannot_carry_are_config_errors(tmp_path):
    from gridpipe.core.exceptions import ConfigErrors

    path = make_analysis(tmp_path, {"gamma": 1}, name="dxconf")
    grid = load_model(GridConfig, path / "configs" / "grid.yaml")
    bad = with_dirac(grid, tags=["two words", "ok"])
    with pytest.raises(UsageError, match=r"grid.yaml: key 'backend.dirac.tags': 'two words'"):
        DiracBackend.from_config(bad, path)
    both = bad.model_copy(update={"grid": grid.grid.model_copy(update={"banned_sites": ["a,b"]})})
    with pytest.raises(ConfigErrors, match=r"grid\.banned_sites"):
        DiracBackend.from_config(both, path)


def test_wrapper_runs_steps_in_order_and_stops_at_the_first_failure(tmp_path):
    from test_scripts_shellcheck import shellcheck

    from gridpipe.backends.dirac_script import encode_steps, render_wrapper

    wrapper = tmp_path / "gridpipe_job.sh"
    wrapper.write_text(render_wrapper())
    wrapper.chmod(0o755)
    checked = subprocess.run([shellcheck(), str(wrapper)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    (tmp_path / "in.txt").write_text("x")
    write = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
    job = spec(
        "w",
        [[sys.executable, "-c", write, "trace", "1"], ["false"], [sys.executable, "-c", write, "trace", "3"]],
        inputs=["/vo/in.txt"],
        outputs=["/vo/out.txt"],
    )
    run = subprocess.run([str(wrapper), encode_steps(job)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1 and (tmp_path / "trace").read_text() == "1"
    assert "job failed: step 2 (false) exited with code 1" in run.stderr
    missing_input = spec("w", [["true"]], inputs=["/vo/absent.txt"])
    run = subprocess.run(
        [str(wrapper), encode_steps(missing_input)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 3 and "absent.txt" in run.stderr
    no_output = spec("w", [["true"]], outputs=["/vo/out.txt"])
    run = subprocess.run(
        [str(wrapper), encode_steps(no_output)], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 4 and "out.txt" in run.stderr
    produces = spec("w", [["touch", "out.txt"]], inputs=["/vo/in.txt"], outputs=["/vo/out.txt"])
    run = subprocess.run([str(wrapper), encode_steps(produces)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and "all steps succeeded" in run.stdout


def test_monitor_links():
    from gridpipe.backends.dirac_status import monitor_link

    assert monitor_link("", 5) is None
    assert monitor_link("https://dirac.example.org/DIRAC/?view=tabs&id={job_id}", 12) == (
        "https://dirac.example.org/DIRAC/?view=tabs&id=12"
    )
    assert monitor_link("https://dirac.example.org/jobs", "7") == "https://dirac.example.org/jobs?JobID=7"


# ---- through the engine and the command line ------------------------------------------------------
def test_status_follows_the_real_chain_through_gridpipe_status(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxchain", 4, env_connection=True)
    env = cli_env(diracx)
    result = gridpipe("submit", "--output_type", "TRAINING", "--json", "-a", str(path), env=env)
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)["submitted"]
    rows = on_server(diracx, path)
    assert {row["JobName"]: str(row["JobID"]) for row in rows} == submitted
    assert {row["Status"] for row in rows} == {"Received"}
    assert {job["status"] for job in status_json(path, diracx)["jobs"]} == {"queued"}
    running, stalled, done, failed = sorted(submitted)
    ids = {name: int(job_id) for name, job_id in submitted.items()}
    diracx.walk([ids[running], ids[stalled]], "Running", site="LCG.CERN.cern")
    diracx.walk([ids[stalled]], "Stalled")
    put_outputs(path, [done])
    diracx.walk([ids[done]], "Done", site="LCG.IN2P3.fr")
    diracx.walk([ids[failed]], "Failed", minor_status="Application Finished With Errors")
    jobs = {job["name"]: job for job in status_json(path, diracx)["jobs"]}
    assert (jobs[running]["status"], jobs[running]["site"]) == ("running", "LCG.CERN.cern")
    assert jobs[stalled]["status"] == "running" and "Stalled" in jobs[stalled]["reason"]
    assert (jobs[done]["status"], jobs[done]["site"]) == ("done", "LCG.IN2P3.fr")
    assert jobs[failed]["status"] == "failed"
    assert jobs[failed]["reason"] == "DIRAC Failed: Application Finished With Errors"
    an = Analysis.open(path)
    try:
        records = an.store.get([running, stalled])
        assert records[stalled].flagged and not records[running].flagged
    finally:
        an.close()
    # logs: the output sandbox, uploaded as the job owner would; a job without one gets a clear message
    diracx.assign_output_sandbox(
        ids[done], {"std.out": b"hello from the grid\n", "std.err": b"", "x.bin": b"\0\1"}
    )
    logs = gridpipe("logs", done, "-a", str(path), env=env)
    assert logs.returncode == 0, logs.stderr
    assert "hello from the grid" in logs.stdout and "x.bin" not in logs.stdout
    none_yet = gridpipe("logs", running, "-a", str(path), env=env)
    assert none_yet.returncode == 1
    assert "no output sandbox yet" in none_yet.stderr and "Running" in none_yet.stderr


def test_kill_sets_the_jobs_killed_on_the_server(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxkill", 3, env_connection=True)
    env = cli_env(diracx)
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env=env).returncode == 0
    first = min(row["JobID"] for row in on_server(diracx, path))
    diracx.walk([first], "Running")
    result = gridpipe("kill", "--all", "-a", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert {row["Status"] for row in on_server(diracx, path)} == {"Killed"}
    assert {job["status"] for job in status_json(path, diracx)["jobs"]} == {"killed"}


def test_dry_run_creates_nothing_test_one_and_active_jobs_are_never_resubmitted(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxdry", 5, env_connection=True)
    env = cli_env(diracx)
    posts = jdl_posts(diracx)
    dry = gridpipe("submit", "--output_type", "TRAINING", "--dry-run", "--json", "-a", str(path), env=env)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["jobs"]
    assert len(planned) == 5
    assert f'JobName = "{planned[0]["name"]}";' in planned[0]["backend_description"]  # the JDL it would send
    text = gridpipe("submit", "--output_type", "TRAINING", "--dry-run", "-a", str(path), env=env)
    assert "  jdl  " in text.stdout and "InputData" in text.stdout
    assert on_server(diracx, path) == [] and jdl_posts(diracx) == posts
    test = gridpipe("submit", "--output_type", "TRAINING", "--test", "-a", str(path), env=env)
    assert test.returncode == 0, test.stderr
    assert len(on_server(diracx, path)) == 1
    assert gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env=env).returncode == 0
    again = gridpipe("submit", "--output_type", "TRAINING", "--json", "-a", str(path), env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["submitted"] == {}
    names = [row["JobName"] for row in on_server(diracx, path)]
    assert len(names) == 5 and len(set(names)) == 5
    grid_file = path / "configs" / "grid.yaml"
    data = yaml.safe_load(grid_file.read_text())
    data["backend"]["dirac"]["monitor_url"] = "https://dirac.example.org/DIRAC/?JobID={job_id}"
    grid_file.write_text(yaml.safe_dump(data))
    rows = status_json(path, diracx)["jobs"]
    assert all(row["link"] == f"https://dirac.example.org/DIRAC/?JobID={row['backend_id']}" for row in rows)
    table = gridpipe("status", "--jobs", "-a", str(path), env=env)
    assert table.returncode == 0 and "https://dirac.example.org" in table.stdout


def test_an_expired_or_short_token_is_refused_before_anything_is_submitted(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxexpired", 3, env_connection=True)
    expired = diracx.mint_credentials(tmp_path / "expired.json", expired=True)
    short = diracx.mint_credentials(tmp_path / "short.json", lifetime=timedelta(minutes=4))
    posts = jdl_posts(diracx)
    for creds, words in ((expired, "expired"), (short, "has only")):
        token = json.loads(creds.read_text())["access_token"]
        for args in (("submit", "--output_type", "TRAINING"), ("run",)):
            result = gridpipe(*args, "-a", str(path), env=cli_env(diracx, creds))
            assert result.returncode == 1, result.stdout + result.stderr
            assert words in result.stderr and "dirac login" in result.stderr
            assert token not in result.stdout + result.stderr
        shown = gridpipe("credentials", "--json", env=cli_env(diracx, creds))
        assert shown.returncode == 1 and token not in shown.stdout + shown.stderr
        assert json.loads(shown.stdout)["user"] == "gridpipe_user"
    assert on_server(diracx, path) == [] and jdl_posts(diracx) == posts
    assert status_json(path, diracx)["jobs"] == []
    # the configured minimum counts too: 20 minutes left is not enough for min_token_validity: 30
    twenty = diracx.mint_credentials(tmp_path / "twenty.json", lifetime=timedelta(minutes=20))
    grid_file = path / "configs" / "grid.yaml"
    grid_file.write_text(grid_file.read_text().replace("min_token_validity: 10", "min_token_validity: 30"))
    result = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env=cli_env(diracx, twenty))
    assert result.returncode == 1 and "min_token_validity" in result.stderr
    assert on_server(diracx, path) == []


def test_credentials_command_shows_the_identity_and_time_left(diracx):
    result = gridpipe("credentials", env=cli_env(diracx))
    assert result.returncode == 0, result.stderr
    for fact in ("gridpipe_user", "gridpipe_vo_user", "gridpipe_vo", "NormalUser", "valid", diracx.url):
        assert fact in result.stdout
    assert json.loads(diracx.user_credentials.read_text())["access_token"] not in result.stdout
    shown = json.loads(gridpipe("credentials", "--json", env=cli_env(diracx)).stdout)
    assert shown["state"] == "valid" and 7 * 3600 < shown["seconds_left"] <= 8 * 3600


def test_submission_goes_in_calls_of_twenty(diracx, tmp_path):
    from gridpipe.service.jobs import submit_stage

    path = dirac_analysis(tmp_path, diracx, "dxbatch", 45)
    an = Analysis.open(path)
    try:
        posts = jdl_posts(diracx)
        outcome = submit_stage(
            an, an.workflow.stage("produce"), None, dry_run=False, limit=None, n_file_per_job=None
        )
        assert outcome.report is not None and len(outcome.report.submitted) == 45
        assert jdl_posts(diracx) - posts == 3
        # the backend cuts a long list itself, several calls in flight, and maps every name to its own id
        backend = an.backend
        assert isinstance(backend, DiracBackend)
        direct = [spec(f"dxbatch_direct_{i:02d}", [["true"]]) for i in range(45)]
        posts = jdl_posts(diracx)
        ids = backend.submit(direct)
        assert jdl_posts(diracx) - posts == 3 and len(ids) == 45
        # searches read every page (the server's default page silently stops at 100 rows)
        group = [{"parameter": "JobGroup", "operator": "eq", "value": backend.job_group}]
        searches = _search_posts(diracx)
        rows = backend.connection.search_all("paging check", group, ["JobID"], per_page=7)
        assert len(rows) == 90 and _search_posts(diracx) - searches == 13
    finally:
        an.close()
    by_name = {row["JobName"]: str(row["JobID"]) for row in on_server(diracx, path)}
    assert len(by_name) == 90
    assert {**outcome.report.submitted, **ids} == by_name


def test_orchestrator_resubmits_a_failing_job_until_max_attempts(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxretry", 2)
    an = Analysis.open(path)
    orchestrator = Orchestrator(an, RunOptions(max_active=10, max_attempts=3, poll_interval=0))
    try:
        assert orchestrator.step() is None
        good, bad = sorted(job.name for job in an.store.jobs())
        put_outputs(path, [good])
        diracx.walk([int(an.store.get([good])[good].backend_id)], "Done")
        seen = []
        report = None
        for _ in range(3):
            job_id = an.store.get([bad])[bad].backend_id
            seen.append(job_id)
            diracx.walk([int(job_id)], "Failed")
            report = orchestrator.step()
        assert report is not None and not report.complete and report.failed_for_good == [bad]
        assert an.store.get([bad])[bad].attempts == 3
    finally:
        an.close()
    jobs = on_server(diracx, path)
    assert sorted(str(row["JobID"]) for row in jobs if row["JobName"] == bad) == sorted(seen)
    assert len(set(seen)) == 3 and [row["JobName"] for row in jobs].count(good) == 1


# ---- crashes: the submitting process, the server ------------------------------------------------------
def wait_for_posts(server, more: int, proc=None, *, since: int | None = None, timeout: float = 60) -> bool:
    """Wait until the server logs `more` submission calls after byte `since` of its log (default: now).

    False if `proc` ended first. Reads only the new lines, so the kill follows the call within a millisecond.
    """
    marker = b'"POST /api/jobs/jdl '
    seen = 0
    deadline = time.monotonic() + timeout
    with server.server_log.open("rb") as log:
        log.seek(since if since is not None else 0, os.SEEK_SET if since is not None else os.SEEK_END)
        pending = b""
        while seen < more:
            chunk = log.read()
            if chunk:
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                seen += sum(marker in line for line in lines)
                continue
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
    return True


@pytest.mark.slow
def test_kill_9_during_a_200_job_submission_leaves_exactly_200_jobs(diracx, tmp_path):
    path = dirac_analysis(tmp_path, diracx, "dxcrash", 200, env_connection=True)
    env = {**os.environ, **cli_env(diracx)}
    command = [sys.executable, "-m", "gridpipe", "submit", "--output_type", "TRAINING", "-a", str(path)]
    kills = 0
    # kill -9 right after a submission call reached the server (jobs created, ids not yet recorded), or a
    # little later, in the next call's window (attempts recorded, jobs not created yet)
    for calls, delay in ((1, 0.0), (2, 0.02), (2, 0.0), (1, 0.04)):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_for_posts(diracx, calls, proc):
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3
    status_json(path, diracx)  # reconciles what the kills left `submitting`
    # a submit that cannot reach the server at all leaves its first batch `submitting` (never created)
    unreachable = {**cli_env(diracx), "DIRACX_URL": f"http://127.0.0.1:{free_port()}"}
    failed = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env=unreachable)
    assert failed.returncode == 1 and "cannot reach the DiracX server" in failed.stderr
    final = gridpipe("submit", "--output_type", "TRAINING", "-a", str(path), env=cli_env(diracx))
    assert final.returncode == 0, final.stderr
    rows = on_server(diracx, path)
    names = [row["JobName"] for row in rows]
    assert len(rows) == 200 and len(set(names)) == 200
    jobs = status_json(path, diracx)["jobs"]
    assert {job["status"] for job in jobs} == {"queued"} and {job["attempts"] for job in jobs} == {1}
    an = Analysis.open(path)
    try:
        kinds = [event.kind for event in an.store.events()]
    finally:
        an.close()
    # the kills landed after the server created jobs and before the store recorded their ids: found by name
    assert kinds.count("adopted") >= 1
    assert {job["name"]: job["backend_id"] for job in jobs} == {
        row["JobName"]: str(row["JobID"]) for row in rows
    }


@pytest.mark.slow
def test_server_killed_during_a_run_loses_and_duplicates_nothing(diracx, tmp_path):
    n_jobs = 100
    path = dirac_analysis(tmp_path, diracx, "dxoutage", n_jobs, submit_parallel=1)
    an = Analysis.open(path)
    orchestrator = Orchestrator(an, RunOptions(max_active=n_jobs, max_attempts=1, poll_interval=0))
    since = diracx.server_log.stat().st_size
    killer = threading.Thread(target=lambda: wait_for_posts(diracx, 1, since=since) and diracx.kill_server())
    try:
        killer.start()
        with pytest.raises(BackendError, match="DiracX server"):
            orchestrator.step()  # plans and submits 100 jobs in 5 calls: the server dies after the first
        killer.join()
        assert an.store.count(statuses=[JobStatus.SUBMITTING]) > 0
        with pytest.raises(BackendError, match="cannot reach the DiracX server"):
            orchestrator.step()  # while it is down: bounded retries, then a clear error
        diracx.start_server()  # same databases
        for _ in range(5):
            orchestrator.step()  # reconcile adopts what the server took; the rest is submitted once
            if an.store.count(statuses=[JobStatus.PLANNED, JobStatus.SUBMITTING]) == 0:
                break
        rows = on_server(diracx, path)
        assert len(rows) == n_jobs and len({row["JobName"] for row in rows}) == n_jobs
        put_outputs(path, [row["JobName"] for row in rows])
        diracx.walk([row["JobID"] for row in rows], "Done")
        report = None
        for _ in range(5):
            report = orchestrator.step()
            if report is not None:
                break
        assert report is not None and report.complete, report
        jobs = an.store.jobs()
        assert {job.status for job in jobs} == {JobStatus.DONE} and {job.attempts for job in jobs} == {1}
        assert {job.name: job.backend_id for job in jobs} == {
            row["JobName"]: str(row["JobID"]) for row in rows
        }
    finally:
        killer.join()
        if not _server_up(diracx):
            diracx.start_server()
        an.close()
    assert len(on_server(diracx, path)) == n_jobs


def test_run_loop_waits_out_a_server_restart_and_finishes(diracx, tmp_path):
    """`Orchestrator.run` (what `gridpipe run` drives) survives the server going away mid-run."""
    n_jobs = 40
    path = dirac_analysis(tmp_path, diracx, "dxrunloop", n_jobs, submit_parallel=1)
    an = Analysis.open(path)
    messages: list[str] = []
    orchestrator = Orchestrator(
        an, RunOptions(max_active=n_jobs, max_attempts=1, poll_interval=0.2), notify=messages.append
    )
    stop = threading.Event()
    result: dict[str, object] = {}
    since = diracx.server_log.stat().st_size
    runner = threading.Thread(target=lambda: result.update(report=orchestrator.run(stop)))
    try:
        runner.start()
        assert wait_for_posts(diracx, 1, since=since)
        diracx.kill_server()
        deadline = time.monotonic() + 60
        while not any("backend unavailable" in m for m in messages):
            assert time.monotonic() < deadline and runner.is_alive(), messages
            time.sleep(0.1)
        diracx.start_server()  # same databases
        deadline = time.monotonic() + 120
        while len(on_server(diracx, path)) < n_jobs or an.store.count(statuses=[JobStatus.SUBMITTING]):
            assert time.monotonic() < deadline and runner.is_alive(), messages[-5:]
            time.sleep(0.3)
        rows = on_server(diracx, path)
        assert len(rows) == n_jobs and len({row["JobName"] for row in rows}) == n_jobs
        put_outputs(path, [row["JobName"] for row in rows])
        diracx.walk([row["JobID"] for row in rows], "Done")
        runner.join(timeout=120)
        assert not runner.is_alive()
        report = result["report"]
        assert report.complete, report  # type: ignore[attr-defined]
        assert len(on_server(diracx, path)) == n_jobs
    finally:
        stop.set()
        runner.join(timeout=30)
        if not _server_up(diracx):
            diracx.start_server()
        an.close()


def _server_up(server) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.url}/api/health/ready", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


# ---- network faults: a fault-injecting stand-in for the server (the real one cannot answer 503 on demand) ----
class FaultyServer:
    """A tiny HTTP server speaking just enough DiracX: it answers each search from a script of faults."""

    def __init__(self, script):
        import http.server

        self.script = list(script)  # per search request: "503", "slow" (longer than the client waits) or rows
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass  # the client stopped waiting (the "slow" answer)

            def do_GET(self):
                self.reply(200, {"token_endpoint": f"{owner.url}/api/auth/token", "issuer": owner.url})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                owner.requests.append(path)
                if path == "/api/jobs/sandbox":
                    self.reply(
                        200, {"pfn": "SB:SandboxSE|/S3/sandboxes/vo/g/u/sha256:" + "0" * 64 + ".tar.zst"}
                    )
                    return
                action = owner.script.pop(0) if path == "/api/jobs/search" and owner.script else "503"
                if action == "slow":
                    time.sleep(1.0)
                    action = []
                if action == "503":
                    self.reply(503, {"detail": "try later"})
                else:
                    self.reply(200, action)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def faulty_backend(tmp_path: Path, url: str, **dirac) -> DiracBackend:
    """A backend pointed at `url`, with a well-formed (unsigned) token that is valid for an hour."""
    import base64

    payload = {"preferred_username": "u", "dirac_group": "g", "vo": "vo", "exp": int(time.time()) + 3600}
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    tmp_path.mkdir(exist_ok=True)
    creds = tmp_path / "creds.json"
    creds.write_text(
        json.dumps({"access_token": f"e30.{body}.sig", "refresh_token": None, "expires_on": payload["exp"]})
    )
    path = make_analysis(tmp_path, {"gamma": 1}, name="dxfaults")
    grid = load_model(GridConfig, path / "configs" / "grid.yaml")
    section = {"url": url, "credentials_path": str(creds), "backoff": 0.01, "backoff_max": 0.02, **dirac}
    return DiracBackend.from_config(with_dirac(grid, **section), path)


def test_status_calls_are_retried_after_5xx_and_timeouts_then_reported(tmp_path):
    row = {"JobID": 7, "Status": "Running", "MinorStatus": "Application", "Site": "LCG.X.org"}
    with FaultyServer(["503", "slow", [row]]) as stub:
        backend = faulty_backend(tmp_path, stub.url, retries=2, timeout=0.3)
        try:
            (status,) = backend.poll(["7"])
        finally:
            backend.close()
        assert (status.status, status.site) == (JobStatus.RUNNING, "LCG.X.org")
        assert stub.requests.count("/api/jobs/search") == 3
    with FaultyServer(["503", "503", "503"]) as stub:
        backend = faulty_backend(tmp_path / "again", stub.url, retries=1)
        try:
            with pytest.raises(BackendError, match=r"answered 503: try later \(after 2 tries\)"):
                backend.poll(["7"])
        finally:
            backend.close()
        assert stub.requests.count("/api/jobs/search") == 2


def test_submission_is_never_resent_after_a_5xx(tmp_path):
    """azure-core would POST the JDLs again after a 503 (duplicate jobs); gridpipe sends them once and reconciles."""
    with FaultyServer([]) as stub:
        backend = faulty_backend(tmp_path, stub.url, retries=4)
        try:
            with pytest.raises(
                BackendError, match=r"submission of 1 job\(s\).*answered 503.*looked up by name"
            ):
                backend.submit([spec("dxfaults_one", [["true"]])])
        finally:
            backend.close()
        assert stub.requests.count("/api/jobs/jdl") == 1


# ---- the backend conformance suite, with the test playing a worker node ---------------------------------
_ANALYSES = itertools.count()


class TestDiracBackendConformance(BackendConformance):
    """Jobs run for real: the stored JDL's input sandbox is downloaded and the wrapper runs with its Arguments."""

    @pytest.fixture
    def backend(self, diracx, tmp_path):
        self.server = diracx
        backend = backend_of(dirac_analysis(tmp_path, diracx, f"dxconf{next(_ANALYSES)}", 1))
        yield backend
        backend.close()

    def spec(self, name, argv, outdir):
        return JobSpec(name=name, stage="conformance", unit="u", commands=(tuple(argv),), where="grid")

    def drive(self, backend, ids, timeout=60):
        """Run every job that has not ended yet as a worker node would, report it as DIRAC's agents would."""
        return run_like_a_node(self.server, backend, ids)


def run_like_a_node(server, backend, ids, env=None):
    """Play the grid for these jobs: download each one's input sandbox from the stored JDL, run the wrapper
    with its Arguments through a shell (as DIRAC does, with `env`), upload std.out/std.err as its output
    sandbox and walk it to Done or Failed (with the minor status DIRAC's JobWrapper gives). Their statuses."""
    pending = [s.backend_id for s in backend.poll(ids) if s.status not in FINAL_STATES]
    for job_id in map(int, pending):
        jdl = stored_jdl(server, job_id)
        (pfn,) = jdl.getListFromExpression("InputSandbox")
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            download_as(server, server.user_credentials, pfn, work)
            command = f"./{jdl.getAttributeString('Executable')} {jdl.getAttributeString('Arguments')}"
            with open(work / "std.out", "wb") as out, open(work / "std.err", "wb") as err:
                code = subprocess.run(
                    ["bash", "-c", command], cwd=work, stdout=out, stderr=err, env=env
                ).returncode
            files = {name: (work / name).read_bytes() for name in ("std.out", "std.err")}
        server.walk([job_id], "Running")
        if code == 0:
            server.walk([job_id], "Done")
        else:
            server.walk([job_id], "Failed", minor_status=f"Application Finished With Errors (exit {code})")
        server.assign_output_sandbox(job_id, files)
    return {s.backend_id: s.status for s in backend.poll(ids)}


def test_status_with_the_server_down_shows_the_stored_state_soon(diracx, tmp_path):
    """With the default patience (4 retries, backoff up to 30 s) `run` waits out outages, but `status`
    gives up within seconds and shows what is stored, with a warning."""
    path = dirac_analysis(tmp_path, diracx, "dxdown", 2, retries=4, backoff=1.0, backoff_max=30.0, timeout=60)
    submitted = gridpipe("submit", "--stage", "produce", "-a", str(path), env=cli_env(diracx))
    assert submitted.returncode == 0, submitted.stderr
    diracx.kill_server()
    try:
        started = time.monotonic()
        status = gridpipe("status", "--json", "-a", str(path), env=cli_env(diracx))
        elapsed = time.monotonic() - started
        assert status.returncode == 0, status.stderr
        assert "could not refresh" in status.stderr and "showing the stored state" in status.stderr
        assert {job["status"] for job in json.loads(status.stdout)["jobs"]} == {"queued"}
        assert elapsed < 8, elapsed  # the configured patience alone would be 1+2+4+8 s of backoff
    finally:
        diracx.start_server()
