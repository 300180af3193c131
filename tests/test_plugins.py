"""Plugins: one loader for every group, settings owned by the plugins, capabilities, the contract's gaps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from gridpipe.analysis.check import check_analysis, combination_problem
from gridpipe.analysis.config import GridConfig
from gridpipe.analysis.configio import load_model
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.backends.contract import Backend
from gridpipe.backends.dirac import DiracBackend
from gridpipe.backends.local import LocalBackend
from gridpipe.core.exceptions import ConfigErrors, UsageError
from gridpipe.core.plugins import Group, PluginNotFoundError, available, entry_points_of, extra_for, load
from gridpipe.core.states import JobStatus
from gridpipe.payloads.contract import Payload
from gridpipe.service.context import Analysis
from gridpipe.storage.contract import FileInfo, Storage
from gridpipe.storage.local import LocalStorage
from gridpipe.workflow.splitter import FilesPerJob, Splitter, split_files, splitter_named

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
BASES: dict[Group, type] = {
    Group.backends: Backend,
    Group.storages: Storage,
    Group.payloads: Payload,
    Group.splitters: Splitter,
}
NO_DIRACX = '''
import sys


class _NoDiracx:
    """Imports of diracx fail exactly as where the `dirac` extra is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "diracx" or name.startswith("diracx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


for _name in [m for m in sys.modules if m == "diracx" or m.startswith("diracx.")]:
    del sys.modules[_name]
sys.meta_path.insert(0, _NoDiracx())
'''
INSTALL_DIRAC = (
    "backend 'dirac' needs packages that are not installed (No module named 'diracx'): "
    'pip install "gridpipe[dirac]"'
)


def test_the_groups_are_the_package_s_entry_point_groups_and_every_entry_point_loads():
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]
    assert {g.value for g in Group} == {g for g in declared if g.startswith("gridpipe.")}
    for group in Group:
        assert set(declared[group.value]) <= set(available(group)), "reinstall: pip install -e ."
        for name in declared[group.value]:
            cls = load(group, name)
            assert isinstance(cls, type) and issubclass(cls, BASES[group]) and cls.name == name
            if group in (Group.backends, Group.storages):
                assert issubclass(cls.settings_model, BaseModel)
                cls.settings_model.model_validate({})  # every key has a default


def test_an_unknown_name_is_a_usage_error_carrying_the_installed_names():
    with pytest.raises(PluginNotFoundError) as err:
        load(Group.storages, "locl")
    assert (err.value.group, err.value.name) == (Group.storages, "locl")
    assert err.value.installed == available(Group.storages) and "local" in err.value.installed
    assert err.value.detail.startswith("storage 'locl' is not installed (did you mean 'local'?); installed: ")
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2


def test_the_extra_of_a_plugin_is_read_from_its_distribution():
    assert extra_for(Group.backends, "dirac") == "dirac"
    assert extra_for(Group.backends, "local") is None
    assert entry_points_of(Group.backends)["dirac"].dist.metadata["Name"] == "gridpipe"


# ---- a new user without the `dirac` extra ---------------------------------------------------------
@pytest.fixture
def no_diracx(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import diracx` fails for real (a site hook, not a mock of gridpipe)."""
    hook = tmp_path / "no-diracx"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(NO_DIRACX)
    return {"PYTHONPATH": str(hook)}


def test_without_the_extra_every_command_names_it_on_one_line(run_cli, tmp_path: Path, no_diracx) -> None:
    rc, out, err = run_cli("create-analysis", "ana", "--backend", "dirac", cwd=tmp_path, env=no_diracx)
    assert (rc, out, err) == (2, "", f"gridpipe: error: {INSTALL_DIRAC}\n")
    assert not (tmp_path / "ana").exists()
    rc, out, err = run_cli("create-analysis", "ana", cwd=tmp_path, env=no_diracx)  # local needs no extra
    assert rc == 0, err
    grid = tmp_path / "ana/configs/grid.yaml"
    text = grid.read_text()
    line = text.splitlines().index('  name: "local"') + 1
    grid.write_text(text.replace('  name: "local"', '  name: "dirac"', 1))
    rc, out, err = run_cli("check", "--json", cwd=tmp_path / "ana", env=no_diracx)
    assert rc == 2, err
    errors = [f for f in json.loads(out)["findings"] if f["level"] == "error"]
    assert errors == [
        {"level": "error", "file": str(grid), "line": line, "message": f"key 'backend.name': {INSTALL_DIRAC}"}
    ]
    for command in (["submit", "--output_type", "TRAINING"], ["submit", "--output_type", "DL2", "--dry-run"]):
        rc, out, err = run_cli(*command, cwd=tmp_path / "ana", env=no_diracx)
        assert (rc, out) == (2, "")
        assert err == f"gridpipe: error: {grid}:{line}: key 'backend.name': {INSTALL_DIRAC}\n"
    rc, out, err = run_cli("create-analysis", "x", "--backend", "nosuch", cwd=tmp_path, env=no_diracx)
    assert (
        err == "gridpipe: error: --backend 'nosuch' is not one of: dirac, local, slurm\n"
    )  # dirac still listed


# ---- settings owned by the plugins ------------------------------------------------------------------
def _new(tmp_path: Path, name: str = "ana", **options: str) -> Path:
    return create_analysis(CreateRequest(name=name, analyses_dir=tmp_path, **options)).path


def test_create_renders_the_chosen_plugins_defaults(tmp_path: Path) -> None:
    path = _new(tmp_path, backend="dirac", storage="dirac")
    data = yaml.safe_load((path / "configs/grid.yaml").read_text())
    assert data["backend"]["dirac"] == DiracBackend.settings_model().model_dump(mode="json")
    assert data["backend"]["dirac"]["cpu_time"] == 86400 and "dirac" not in data
    assert data["storage"] == {"name": "dirac", "dirac": {"se": "", "command_timeout": 900.0, "bin_dir": ""}}
    local = yaml.safe_load((_new(tmp_path, "loc") / "configs/grid.yaml").read_text())
    assert local["backend"] == {"name": "local", "submit_batch": 0, "local": {"max_workers": 0}}
    assert local["storage"]["local"] == {"root": str(tmp_path / "loc/.gridpipe/storage")}


def test_a_plugin_section_has_file_line_key_errors_and_suggestions(tmp_path: Path) -> None:
    grid = _new(tmp_path) / "configs/grid.yaml"
    text = grid.read_text().replace("    max_workers: 0", "    max_worker: 2")
    grid.write_text(text + "\n")
    line = text.splitlines().index("    max_worker: 2") + 1
    with pytest.raises(ConfigErrors) as err:
        load_model(GridConfig, grid)
    (error,) = err.value.errors
    assert (error.key, error.line) == ("backend.local.max_worker", line)
    assert "unknown key (did you mean 'max_workers'?); allowed here: max_workers" in error.message
    grid.write_text(text.replace("max_worker: 2", "max_workers: -1").replace("  local:\n", "  lokal:\n", 1))
    with pytest.raises(ConfigErrors) as err:
        load_model(GridConfig, grid)
    assert [e.key for e in err.value.errors] == ["backend.lokal"]
    assert "did you mean 'local'?" in err.value.errors[0].message


def test_a_plugin_section_value_is_checked_by_the_plugin_s_model(tmp_path: Path) -> None:
    grid = _new(tmp_path, backend="dirac", storage="dirac") / "configs/grid.yaml"
    grid.write_text(grid.read_text().replace("cpu_time: 86400", "cpu_time: 0"))
    with pytest.raises(ConfigErrors) as err:
        load_model(GridConfig, grid)
    assert [e.key for e in err.value.errors] == ["backend.dirac.cpu_time"]
    assert "greater than or equal to 1 (got 0)" in err.value.errors[0].message


OLD_GRID = """\
analysis_name: old
grid: {home: /vo.test/user/t/tester, path: x, user_name: tester}
backend: {name: dirac, max_workers: 3}
storage: {name: dirac, local_root: st, dirac_se: SE-1, dirac_command_timeout: 5, dirac_bin_dir: bin}
payload: {name: demo}
dirac: {cpu_time: 7, url: "https://dx.example.org"}
"""


def test_old_grid_files_keep_working_and_check_says_where_keys_go(tmp_path: Path) -> None:
    path = _new(tmp_path, "old", backend="dirac", storage="dirac")
    (path / "configs/grid.yaml").write_text(OLD_GRID)
    grid = load_model(GridConfig, path / "configs/grid.yaml")
    assert grid.backend.settings.cpu_time == 7 and grid.backend.settings.url == "https://dx.example.org"
    assert grid.backend.sections()["local"].max_workers == 3
    assert grid.storage.settings.model_dump() == {"se": "SE-1", "command_timeout": 5.0, "bin_dir": "bin"}
    assert LocalStorage.from_config(grid, path).root == (path / "st").resolve()
    assert LocalBackend.from_config(grid, path).workers == 3
    warnings = [f.text() for f in check_analysis(path) if f.level == "warning" and "old place" in f.text()]
    grid_file = path / "configs/grid.yaml"
    assert warnings == [
        f"{grid_file}:6: key 'dirac': read from its old place; move it to 'backend.dirac'",
        f"{grid_file}:3: key 'backend.max_workers': read from its old place; move it to 'backend.local.max_workers'",
        f"{grid_file}:4: key 'storage.local_root': read from its old place; move it to 'storage.local.root'",
        f"{grid_file}:4: key 'storage.dirac_se': read from its old place; move it to 'storage.dirac.se'",
        f"{grid_file}:4: key 'storage.dirac_command_timeout': read from its old place; "
        "move it to 'storage.dirac.command_timeout'",
        f"{grid_file}:4: key 'storage.dirac_bin_dir': read from its old place; move it to 'storage.dirac.bin_dir'",
    ]


def test_schema_describes_the_installed_plugins_sections(run_cli, tmp_path: Path) -> None:
    rc, _, err = run_cli("schema", "-o", tmp_path, cwd=tmp_path)
    assert rc == 0, err
    schema = json.loads((tmp_path / "grid.schema.json").read_text())
    defs = schema["$defs"]
    backend = defs["BackendSection"]["properties"]
    assert backend["name"]["enum"] == available(Group.backends)
    assert {"local", "dirac"} <= set(backend) and "max_workers" not in backend
    assert "cpu_time" in defs["DiracSection"]["properties"]
    assert "root" in defs["LocalStorageSettings"]["properties"]
    assert defs["PayloadSection"]["properties"]["name"]["enum"] == available(Group.payloads)
    assert "dirac" not in schema["properties"]


# ---- capabilities ------------------------------------------------------------------------------------
def test_check_refuses_a_grid_backend_with_a_storage_grid_jobs_cannot_reach(tmp_path: Path) -> None:
    path = _new(tmp_path, backend="dirac", storage="local")
    errors = [f.text() for f in check_analysis(path) if f.level == "error"]
    grid_file = path / "configs/grid.yaml"
    line = grid_file.read_text().splitlines().index("storage:") + 3
    assert errors == [
        f"{grid_file}:{line}: key 'storage.name': backend 'dirac' runs jobs on other machines, which cannot "
        "reach storage 'local' (a folder on this one): every job would end without its outputs in storage; "
        "choose a storage reachable from grid jobs or a backend that shares this machine's files"
    ]
    assert not [
        f
        for f in check_analysis(_new(tmp_path, "ok", backend="dirac", storage="dirac"))
        if f.level == "error"
    ]


def test_the_refusal_follows_what_the_plugins_declare_not_their_names(tmp_path: Path, monkeypatch) -> None:
    grid = load_model(GridConfig, _new(tmp_path, backend="dirac", storage="local") / "configs/grid.yaml")
    assert combination_problem(grid) is not None
    monkeypatch.setattr(LocalStorage, "reachable_from_grid", True)
    assert combination_problem(grid) is None
    monkeypatch.setattr(LocalStorage, "reachable_from_grid", False)
    monkeypatch.setattr(DiracBackend, "shares_file_system", True)
    assert combination_problem(grid) is None


# ---- the contract's gaps ----------------------------------------------------------------------------
def test_analysis_close_closes_the_backend_and_the_storage(tmp_path: Path) -> None:
    an = Analysis.open(_new(tmp_path))
    backend, storage = an.backend, an.storage
    assert backend.poll(["1"]) == [] and storage.list("/vo.test") == []  # opens the queue and the catalogue
    assert "queue" in backend.__dict__ and not storage._catalogue._idle.empty()  # type: ignore[attr-defined]
    an.close()
    assert "queue" not in backend.__dict__ and storage._catalogue._idle.empty()  # type: ignore[attr-defined]


def test_poll_never_says_done_for_an_id_the_backend_does_not_know(tmp_path: Path) -> None:
    an = Analysis.open(_new(tmp_path))
    try:
        answers = an.backend.poll(["424242", "1"])
        assert all(s.status == JobStatus.FAILED for s in answers if s.backend_id in ("424242", "1"))
        assert not [s for s in answers if s.status == JobStatus.DONE]
    finally:
        an.close()


def test_replicas_is_part_of_the_storage_contract() -> None:
    class NoReplicas(Storage):
        name = "noreplicas"

        @classmethod
        def from_config(cls, grid, analysis_path):
            return cls()

        def list(self, lfn_dir: str) -> list[FileInfo]:
            return []

        def stat(self, lfns):
            return {}

        def get(self, lfn, dest):
            raise NotImplementedError

        def put(self, src, lfn, *, replicas=(), move=False):
            raise NotImplementedError

        def remove(self, lfns) -> None:
            return None

    with pytest.raises(TypeError, match="replicas"):
        NoReplicas()


def test_the_backend_says_which_python_payloads_run_with(tmp_path: Path) -> None:
    assert LocalBackend.job_python() == sys.executable
    assert DiracBackend.job_python() == "python3"
    for backend, python in (("local", sys.executable), ("dirac", "python3")):
        an = Analysis.open(_new(tmp_path, f"py{backend}", backend=backend, storage="dirac"))
        try:
            assert an.plan_context().python == python
        finally:
            an.close()


# ---- payloads and splitters ----------------------------------------------------------------------
def test_check_runs_the_payload_s_checks_before_any_job_exists(tmp_path: Path) -> None:
    for payload in available(Group.payloads):
        path = _new(tmp_path, f"p{payload}", payload=payload)
        assert not [f for f in check_analysis(path) if f.level == "error"], payload
    payload = "demo"
    path = tmp_path / "pdemo"
    workflow = path / "configs/workflow.yaml"
    text = workflow.read_text()
    workflow.write_text(text.replace("--outfile {output}", "--outfile {outptu}", 1))
    errors = [f.message for f in check_analysis(path) if f.level == "error"]
    assert len(errors) == 1 and "stage 'training_energy': unknown placeholder {outptu}" in errors[0]
    spec = yaml.safe_load(text)
    del spec["stages"][0]["command"][payload]
    workflow.write_text(yaml.safe_dump(spec))
    errors = [f.message for f in check_analysis(path) if f.level == "error"]
    assert errors == [
        f"stage 'training_energy' has no command for payload '{payload}'; add one or choose another payload"
    ]


def test_the_default_splitter_is_files_per_job_with_today_s_tokens() -> None:
    lfns = [f"/vo/sim/gamma_run{n}.simtel.zst" for n in (5, 1, 3, 2, 4)] + ["/vo/sim/extra.h5"]
    assert splitter_named("files").split(lfns, 2) == split_files(lfns, 2)
    assert isinstance(splitter_named("files"), FilesPerJob)
    assert [b.token for b in split_files(lfns[:5], 2)] == ["run1-run2", "run3-run4", "run5"]


def test_a_stage_names_its_splitter_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    path = _new(tmp_path)
    workflow = path / "configs/workflow.yaml"
    spec = yaml.safe_load(workflow.read_text())
    spec["stages"][0]["splitter"] = "files"
    workflow.write_text(yaml.safe_dump(spec))
    assert not [f for f in check_analysis(path) if f.level == "error"]
    spec["stages"][0]["splitter"] = "runs"
    workflow.write_text(yaml.safe_dump(spec))
    errors = [f.message for f in check_analysis(path) if f.level == "error"]
    assert len(errors) == 1 and "stages[0].splitter" in errors[0]
    assert "splitter 'runs' is not installed; installed: files" in errors[0]


# ---- the door is open: a site's own plugin package --------------------------------------------------
EXAMPLE = Path(__file__).parent / "example_plugin"
SITE_WORKFLOW = """\
version: 1
tree:
  directories: [data/simtel, data/OUT]
  files:
    - {path: configs/grid.yaml, template: configs/grid.yaml.j2}
    - {path: configs/analysis.yaml, template: configs/analysis.yaml.j2}
    - {path: configs/RandomForestRegressor.yaml, template: configs/RandomForestRegressor.yaml.j2}
    - {path: configs/AdaBoostRegressor.yaml, template: configs/AdaBoostRegressor.yaml.j2}
    - {path: configs/RandomForestClassifier.yaml, template: configs/RandomForestClassifier.yaml.j2}
    - {path: configs/performance.yaml, template: configs/performance.yaml.j2}
inputs:
  gamma_in: data/simtel/gamma_in.list
stages:
  - name: produce
    output_type: TRAINING
    units: [gamma]
    input_list: "{particle}_in"
    data_type: OUT
    splitter: pairs
    job_name: "{analysis}_OUT_{particle}_{token}"
    output: "OUT_{particle}_{token}.txt"
    command:
      echo: ["{python} -c 'import sys; open(sys.argv[1], \\"w\\").write(\\" \\".join(sys.argv[2:]))' {output} {inputs}"]
"""


def test_a_site_s_own_plugins_work_without_a_line_of_gridpipe_changed(run_cli, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(EXAMPLE)}
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(SITE_WORKFLOW)
    args = ["create-analysis", "ana", "--backend", "site", "--payload", "echo", "--workflow", workflow]
    rc, out, err = run_cli(*args, cwd=tmp_path, env=env)
    assert rc == 0, err
    path = tmp_path / "ana"
    grid = path / "configs/grid.yaml"
    assert "  site:\n    # Jobs at once on the site's machine.\n    slots: 1\n" in grid.read_text()
    storage = LocalStorage(path / ".gridpipe/storage")
    lfns = []
    for run in range(1, 6):
        (tmp_path / f"in{run}").write_text(f"run {run}\n")
        lfns.append(f"/vo.test/sim/gamma_run{run}.txt")
        storage.put(tmp_path / f"in{run}", lfns[-1])
    storage.close()
    (path / "data/simtel/gamma_in.list").write_text("\n".join(lfns) + "\n")
    text = grid.read_text()
    grid.write_text(text.replace("    slots: 1", "    slot: 2"))
    rc, out, err = run_cli("check", cwd=path, env=env)
    assert rc == 2 and "key 'backend.site.slot': unknown key (did you mean 'slots'?)" in out
    grid.write_text(text.replace('    queue_name: "short"', '    queue_name: "long"'))
    rc, out, err = run_cli("check", cwd=path, env=env)
    assert rc == 0, out + err
    rc, out, err = run_cli("submit", "--output_type", "TRAINING", "--dry-run", "--json", cwd=path, env=env)
    assert rc == 0, err
    planned = json.loads(out)["jobs"]
    assert [j["name"] for j in planned] == [
        "ana_OUT_gamma_pair0",
        "ana_OUT_gamma_pair1",
        "ana_OUT_gamma_pair2",
    ]
    assert planned[0]["backend_description"] == "queue long: ana_OUT_gamma_pair0"
    rc, out, err = run_cli("run", "--poll-interval", "0.1", cwd=path, env=env, timeout=180)
    assert rc == 0, out + err
    rc, out, err = run_cli("status", "--json", cwd=path, env=env)
    jobs = json.loads(out)["jobs"]
    assert sorted((j["name"], j["status"]) for j in jobs) == [
        (f"ana_OUT_gamma_pair{i}", "done") for i in range(3)
    ]
    outputs = sorted(p.name for p in (path / "data/OUT/gamma").glob("*.txt"))
    assert outputs == [f"OUT_gamma_pair{i}.txt" for i in range(3)]
    rc, out, err = run_cli("check", cwd=path)  # without the package: the names are not installed
    assert rc == 2 and "backend 'site' is not installed; installed: dirac, local" in out


def test_a_site_s_backend_passes_the_shipped_conformance_suite(tmp_path: Path) -> None:
    """The example package runs gridpipe.testing's suite on its own backend, as a site would."""
    suite = EXAMPLE / "gridpipe_example" / "test_conformance.py"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE)},
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
