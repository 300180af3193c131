"""`gridpipe create-analysis`: the tree, the rendered values, the metadata, --overwrite, names, failures."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import string
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridpipe import __version__
from gridpipe.analysis.config import CONFIG_MODELS
from gridpipe.analysis.configio import load_model
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.naming import (
    ANALYSIS_NAME_MAX,
    DIRAC_JOBNAME_MAX,
    RUN_DIGITS_MAX,
    analysis_name_problem,
    run_token,
)
from gridpipe.analysis.render import environment, yaml_document, yaml_value
from gridpipe.analysis.skeleton import load_workflow
from gridpipe.core.exceptions import UsageError
from gridpipe.core.resources import skeleton_dir, templates_dir

CONFIGS = [
    "grid.yaml",
    "analysis.yaml",
    "RandomForestRegressor.yaml",
    "AdaBoostRegressor.yaml",
    "RandomForestClassifier.yaml",
    "performance.yaml",
    "workflow.yaml",
]
LISTS = [
    "gamma_energy",
    "gamma_classification",
    "proton_classification",
    "gamma_perf",
    "proton_perf",
    "electron_perf",
]
DIRECTORIES = [
    "configs",
    "data/simtel",
    "data/TRAINING/for_energy_estimation/gamma",
    "data/TRAINING/for_particle_classification/gamma",
    "data/TRAINING/for_particle_classification/proton",
    "data/DL2/gamma",
    "data/DL2/proton",
    "data/DL2/electron",
    "data/DL3",
    "estimators/energy_regressor",
    "estimators/gamma_hadron_classifier",
]
FILES = [
    "analysis_metadata.yaml",
    *(f"configs/{name}" for name in CONFIGS),
    *(f"data/simtel/{name}.list" for name in LISTS),
    "data/download_and_merge.sh",
    "estimators/upload_models.sh",
]
SCRIPTS = ["data/download_and_merge.sh", "estimators/upload_models.sh"]
GRID_HOME = "/vo.cta.in2p3.fr/user/j/jdoe"


def load(path: Path) -> object:
    """Parse one YAML file."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path below `root` (and `root` itself) with its mode, mtime and content."""
    found = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        content = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
        found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return found


@pytest.fixture(scope="module")
def created(run_cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One analysis made by the real CLI with its defaults, in its current directory (no --analyses-dir)."""
    cwd = tmp_path_factory.mktemp("analyses")
    rc, out, err = run_cli("create-analysis", "demo", "--GRID-home", GRID_HOME, "--json", cwd=cwd)
    assert rc == 0, err
    return cwd / "demo", json.loads(out)


# ---------------------------------------------------------------- the tree


def test_tree_is_made_in_the_current_directory_by_default(created: tuple[Path, dict]) -> None:
    path, report = created
    assert report["path"] == str(path)
    assert report["created"] is True
    for directory in DIRECTORIES:
        assert (path / directory).is_dir(), directory
    for file in FILES:
        assert (path / file).is_file(), file
    assert set(FILES) <= set(report["written"])
    assert report["kept"] == []


def test_scripts_are_executable_and_other_files_are_not(created: tuple[Path, dict]) -> None:
    path, _ = created
    for file in FILES:
        executable = os.access(path / file, os.X_OK)
        assert executable == (file in SCRIPTS), file


def test_input_lists_are_empty_but_explain_the_format(created: tuple[Path, dict]) -> None:
    path, _ = created
    for name in LISTS:
        lines = (path / f"data/simtel/{name}.list").read_text(encoding="utf-8").splitlines()
        assert lines, name
        assert all(line.startswith("#") or not line.strip() for line in lines), name
        assert "LFN" in "\n".join(lines)


def test_log_records_every_file_written_under_the_final_path(created: tuple[Path, dict]) -> None:
    path, report = created
    log = (path / "logs/create-analysis.log").read_text(encoding="utf-8")
    first = log.splitlines()[0]
    assert f"created analysis {path} " in first, first
    assert ".creating-" not in log
    for rel in report["written"]:
        assert f" wrote {rel}\n" in log


# ---------------------------------------------------------------- rendered values


def contains(actual: object, expected: object) -> bool:
    """`actual` has every key of `expected` with the same value (nested mappings compared the same way)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    return actual == expected


def test_grid_config_has_every_value_filled_in(created: tuple[Path, dict]) -> None:
    path, _ = created
    grid = load(path / "configs/grid.yaml")
    assert grid["grid"] == {
        "home": GRID_HOME,
        "path": "cta_analyses",
        "user_name": "jdoe",
        "banned_sites": [],
        "upload_sites": [],
    }
    assert grid["inputs"] == {name: f"data/simtel/{name}.list" for name in LISTS}
    expected = {
        "analysis_name": "demo",
        "backend": {"name": "local"},
        "storage": {"name": "local", "local": {"root": ".gridpipe/storage"}},
        "payload": {"name": "demo", "mode": "tail"},
        "jobs": {"n_file_per_job": 10, "n_jobs_max": -1},
    }
    assert contains(grid, expected), grid


def test_model_and_analysis_configs_point_into_the_analysis(created: tuple[Path, dict]) -> None:
    path, _ = created
    configs = path / "configs"
    for name in ("RandomForestRegressor.yaml", "AdaBoostRegressor.yaml"):
        general = load(configs / name)["General"]
        assert general["model_type"] == "regressor"
        assert general["data_dir"] == str(path / "data/TRAINING/for_energy_estimation/gamma")
        assert general["data_sig_file"] == "TRAINING_energy_tail_gamma_merged.h5"
        assert general["outdir"] == str(path / "estimators/energy_regressor")
    general = load(configs / "RandomForestClassifier.yaml")["General"]
    assert general["data_dir"] == str(path / "data/TRAINING/for_particle_classification")
    assert general["data_sig_file"] == "TRAINING_classification_tail_gamma_merged.h5"
    assert general["data_bkg_file"] == "TRAINING_classification_tail_proton_merged.h5"
    assert general["outdir"] == str(path / "estimators/gamma_hadron_classifier")
    analysis = load(configs / "analysis.yaml")["General"]
    assert analysis["config_name"] == "demo"
    assert analysis["mode"] == "tail"
    performance = load(configs / "performance.yaml")["General"]
    assert performance["indir"] == str(path / "data/DL2")
    assert performance["outdir"] == str(path / "data/DL3")


def _nones(data: object, where: str = "") -> list[str]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _nones(v, f"{where}.{k}")]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _nones(v, f"{where}[{i}]")]
    return [where] if data is None or data == "" else []


def test_every_config_loads_and_no_value_is_left_empty(created: tuple[Path, dict]) -> None:
    path, _ = created
    for name, model in CONFIG_MODELS.items():
        load_model(model, path / "configs" / name)
        text = (path / "configs" / name).read_text(encoding="utf-8")
        assert "{{" not in text and "{%" not in text, name
        assert _nones(load(path / "configs" / name)) == [], name
    assert load_workflow(path / "configs/workflow.yaml") == load_workflow(skeleton_dir() / "workflow.yaml")


def test_metadata_names_the_analysis_and_when_it_was_made(created: tuple[Path, dict]) -> None:
    path, _ = created
    meta = load(path / "analysis_metadata.yaml")
    assert meta["name"] == "demo"
    assert meta["analyses_dir"] == str(path.parent)
    assert meta["grid_home"] == GRID_HOME
    assert meta["grid_path"] == "cta_analyses"
    assert meta["gridpipe_version"] == __version__
    assert isinstance(meta["created"], str)
    created_at = datetime.fromisoformat(meta["created"])
    assert created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=10)
    params = meta["parameters"]
    assert params["name"] == "demo"
    assert params["grid_home"] == GRID_HOME
    assert params["n_file_per_job"] == 10
    assert params["overwrite"] is False
    assert all(isinstance(key, str) for key in meta)  # plain keys, no python tags
    assert "!!python" not in (path / "analysis_metadata.yaml").read_text(encoding="utf-8")


def test_protopipe_flag_names_are_accepted(run_cli, tmp_path: Path) -> None:
    target = tmp_path / "out dir"
    rc, _out, err = run_cli(
        "create-analysis",
        "--analysis_name",
        "proto",
        "--output_path",
        target,
        "--GRID-home",
        "/vo.cta.in2p3.fr/user/a/alice",
        "--GRID-path-from-home",
        "ana/v1",
        "--banned-site",
        "LCG.Bad.it",
        "--upload-site",
        "DESY-ZN-Disk",
        "-n",
        "7",
        cwd=tmp_path,
    )
    assert rc == 0, err
    grid = load(target / "proto/configs/grid.yaml")
    assert grid["grid"] == {
        "home": "/vo.cta.in2p3.fr/user/a/alice",
        "path": "ana/v1",
        "user_name": "alice",
        "banned_sites": ["LCG.Bad.it"],
        "upload_sites": ["DESY-ZN-Disk"],
    }
    assert grid["jobs"]["n_file_per_job"] == 7
    (target / "proto/configs/grid.yaml").write_text("edited\n", encoding="utf-8")
    rc, _, err = run_cli(
        "create-analysis",
        "--analysis_name",
        "proto",
        "--output_path",
        target,
        "--overwrite-analysis",
        cwd=tmp_path,
    )
    assert rc == 0, err
    assert load(target / "proto/configs/grid.yaml")["analysis_name"] == "proto"


# ---------------------------------------------------------------- hostile values


HOSTILE_DIR = "an 'odd' \"dir\" $(touch pwned) `id` #x: y é ${HOME}"
HOSTILE_GRID_PATH = "p'q\"r/$(id)/`id`#x:é/${HOME}/a,b;c&d|e>f<g*h?i[j]k{l}m~n!o"


def test_hostile_values_reach_the_configs_exactly(run_cli, tmp_path: Path) -> None:
    sites = ["LCG.a: b #c", "- d\n- e", "'", '"', "$(touch pwned)", "`id`", "日本", "yes", "null", "1.0"]
    args = ["create-analysis", "x", "--analyses-dir", tmp_path / HOSTILE_DIR]
    args += ["--grid-path-from-home", HOSTILE_GRID_PATH, "--GRID-home", "/vo/user/j/jd'oe$x`y`"]
    for site in sites:
        args += ["--banned-site", site, "--upload-site", site[::-1]]
    rc, _, err = run_cli(*args, cwd=tmp_path)
    assert rc == 0, err
    path = tmp_path / HOSTILE_DIR / "x"
    grid = load(path / "configs/grid.yaml")["grid"]
    assert grid == {
        "home": "/vo/user/j/jd'oe$x`y`",
        "path": HOSTILE_GRID_PATH,
        "user_name": "jd'oe$x`y`",
        "banned_sites": sites,
        "upload_sites": [site[::-1] for site in sites],
    }
    assert load(path / "configs/performance.yaml")["General"]["indir"] == str(path / "data/DL2")
    meta = load(path / "analysis_metadata.yaml")
    assert meta["analyses_dir"] == str(tmp_path / HOSTILE_DIR)
    assert meta["parameters"]["banned_sites"] == sites
    assert not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("grid_path", "a: b"),
        ("grid_path", "a\nb"),
        ("grid_path", "../up"),
        ("grid_path", "/abs"),
        ("grid_home", "relative/home"),
        ("grid_home", "/vo/user/a b"),
        ("grid_home", "/vo/../x"),
    ],
)
def test_values_that_would_break_lfns_are_refused_and_nothing_is_made(
    tmp_path: Path, option: str, value: str
) -> None:
    with pytest.raises(UsageError) as caught:
        create_analysis(CreateRequest(name="x", analyses_dir=tmp_path / "new", **{option: value}))
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.detail and option.replace("_", "-") in caught.value.detail.lower()
    assert not (tmp_path / "new").exists()


def test_refused_value_on_the_command_line_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli("create-analysis", "x", "--GRID-path-from-home", "a: b", cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err.startswith("gridpipe: error: --grid-path-from-home 'a: b': ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


_YAML_SCALARS = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False))
_YAML_VALUES = st.recursive(
    _YAML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(_YAML_VALUES, st.integers(min_value=0, max_value=3))
def test_yaml_filter_parses_back_to_exactly_the_value(value: object, depth: int) -> None:
    template = "".join(f"{'  ' * level}k{level}:\n" for level in range(depth))
    template += "  " * depth + "v: {{ value | yaml }}  # a comment\n" + "after: 1\n"
    env = environment()
    text = env.from_string(template).render(value=value)
    expected: object = {"v": value}
    for level in reversed(range(depth)):
        expected = {f"k{level}": expected}
    assert yaml.safe_load(text) == {**expected, "after": 1}
    assert yaml.safe_load(yaml_value(value)) == value


@settings(max_examples=200, deadline=None)
@given(_YAML_VALUES)
def test_metadata_documents_parse_back_to_exactly_the_data(value: object) -> None:
    data = {"name": value, "parameters": {"a": value, "b": [value, "x"]}}
    assert yaml.safe_load(yaml_document(data)) == data


_SEGMENT = st.text(
    alphabet=st.characters(
        exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), exclude_characters='/\\\x85";,[]{}%'
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
_DIRNAME = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=30
).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dirname=_DIRNAME,
    grid_path=st.lists(_SEGMENT, max_size=3).map("/".join),
    home=st.lists(_SEGMENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts)),
    sites=st.lists(st.text(), max_size=3),
)
def test_any_accepted_value_reaches_configs_and_metadata_exactly(
    dirname: str, grid_path: str, home: str, sites: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        req = CreateRequest(
            name="h",
            analyses_dir=Path(tmp) / dirname,
            grid_home=home,
            grid_path=grid_path,
            banned_sites=tuple(sites),
            upload_sites=tuple(reversed(sites)),
        )
        path = create_analysis(req).path
        assert path == Path(tmp).resolve() / dirname / "h"
        grid = load(path / "configs/grid.yaml")
        assert grid["grid"] == {
            "home": home,
            "path": grid_path,
            "user_name": home.rsplit("/", 1)[-1],
            "banned_sites": sites,
            "upload_sites": sites[::-1],
        }
        assert grid["storage"]["local"]["root"] == ".gridpipe/storage"
        regressor = load(path / "configs/RandomForestRegressor.yaml")["General"]
        assert regressor["outdir"] == str(path / "estimators/energy_regressor")
        meta = load(path / "analysis_metadata.yaml")
        assert (meta["analyses_dir"], meta["grid_home"], meta["grid_path"]) == (
            str(path.parent),
            home,
            grid_path,
        )
        assert meta["parameters"]["banned_sites"] == sites


# ---------------------------------------------------------------- --overwrite


def test_existing_analysis_is_never_touched_without_overwrite(run_cli, tmp_path: Path) -> None:
    create_analysis(CreateRequest(name="a", analyses_dir=tmp_path))
    (tmp_path / "a/data/DL2/gamma/mine.h5").write_bytes(b"data")
    before = snapshot(tmp_path)
    rc, _out, err = run_cli("create-analysis", "a", "--GRID-home", "/vo/other/user", cwd=tmp_path)
    assert rc == 2
    assert err.count("\n") == 1 and "--overwrite" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_a_folder_that_is_not_an_analysis_is_never_overwritten(run_cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/thesis.tex").write_text("precious", encoding="utf-8")
    before = snapshot(tmp_path / "a")
    rc, _, err = run_cli("create-analysis", "a", "--overwrite", cwd=tmp_path)
    assert rc == 2
    assert "not a gridpipe analysis" in err
    assert snapshot(tmp_path / "a") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_overwrite_rerenders_configs_and_scripts_and_keeps_user_files(run_cli, tmp_path: Path) -> None:
    assert run_cli("create-analysis", "a", cwd=tmp_path).rc == 0  # the same gridpipe as the overwrite's
    path = tmp_path / "a"
    rendered = {rel: (path / rel).read_bytes() for rel in [*SCRIPTS, "configs/analysis.yaml"]}
    meta_before = load(path / "analysis_metadata.yaml")
    user_files = {
        "data/simtel/gamma_energy.list": b"/vo/MC/gamma_run1.simtel.zst\n",
        "data/DL2/gamma/DL2_gamma_tail_run1.h5": b"\x89HDF",
        "data/notes.txt": b"my notes",
        "estimators/energy_regressor/model.pkl": b"model",
    }
    for rel, content in user_files.items():
        (path / rel).write_bytes(content)
    for rel in [*SCRIPTS, "configs/analysis.yaml", "configs/grid.yaml"]:
        (path / rel).write_text("# broken by the user\n", encoding="utf-8")
    (path / "data/simtel/proton_perf.list").unlink()

    rc, out, err = run_cli("create-analysis", "a", "--overwrite", "-n", "5", "--json", cwd=tmp_path)
    assert rc == 0, err
    report = json.loads(out)
    assert report["created"] is False
    assert "data/simtel/gamma_energy.list" in report["kept"]
    assert "data/simtel/proton_perf.list" in report["written"]
    for rel, content in user_files.items():
        assert (path / rel).read_bytes() == content, rel
    for rel, content in rendered.items():
        assert (path / rel).read_bytes() == content, rel
    assert os.access(path / "data/download_and_merge.sh", os.X_OK)
    assert load(path / "configs/grid.yaml")["jobs"]["n_file_per_job"] == 5
    assert (path / "data/simtel/proton_perf.list").read_text(encoding="utf-8").startswith("#")
    meta = load(path / "analysis_metadata.yaml")
    assert meta["created"] == meta_before["created"]
    assert meta["parameters"]["overwrite"] is True
    log = (path / "logs/create-analysis.log").read_text(encoding="utf-8")
    assert f"overwrote analysis {path} " in log
    assert " kept data/simtel/gamma_energy.list\n" in log
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_scripts_are_the_same_whichever_name_started_the_interpreter(tmp_path: Path) -> None:
    """pip and pytest may run this environment's python under different names (python, python3, ...):
    the scripts a creation renders do not depend on it."""
    names = sorted(
        p.name
        for p in Path(sys.executable).parent.glob("python*")
        if re.fullmatch(r"python[0-9.]*", p.name) and os.access(p, os.X_OK)
    )
    rendered = []
    for name in names[:2] if len(names) > 1 else [Path(sys.executable).name] * 2:
        done = subprocess.run(
            [str(Path(sys.executable).with_name(name)), "-m", "gridpipe", "create-analysis", "a"],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != "GRIDPIPE"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        rendered.append([(tmp_path / "a" / rel).read_bytes() for rel in SCRIPTS])
        shutil.rmtree(tmp_path / "a")
    assert rendered[0] == rendered[1]


@pytest.mark.parametrize(("content", "line"), [("name: [\n", 2), ("- a list\n", 1)])
def test_overwrite_of_an_analysis_with_broken_metadata_names_the_file(
    tmp_path: Path, content: str, line: int
) -> None:
    path = create_analysis(CreateRequest(name="a", analyses_dir=tmp_path)).path
    (path / "analysis_metadata.yaml").write_text(content, encoding="utf-8")
    before = snapshot(path)
    with pytest.raises(UsageError) as caught:
        create_analysis(CreateRequest(name="a", analyses_dir=tmp_path, overwrite=True))
    assert caught.value.detail.startswith(f"{path / 'analysis_metadata.yaml'}:{line}: ")
    assert snapshot(path) == before


# ---------------------------------------------------------------- failures leave nothing behind


def _workflow_with(tmp_path: Path, template: str | None = None, **replace: str) -> Path:
    """A copy of the default workflow in its own folder, with text replaced and a templates/ folder."""
    folder = tmp_path / "wf"
    folder.mkdir(exist_ok=True)
    text = (skeleton_dir() / "workflow.yaml").read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    if template is not None:
        (folder / "templates/configs").mkdir(parents=True, exist_ok=True)
        (folder / "templates/configs/grid.yaml.j2").write_text(template, encoding="utf-8")
    (folder / "workflow.yaml").write_text(text, encoding="utf-8")
    return folder / "workflow.yaml"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "nope.yaml.j2"),
        ("syntax", "template syntax error"),
        ("undefined", "no_such_variable"),
        ("invalid-config", "configs/grid.yaml"),
        ("broken-yaml", "workflow.yaml"),
    ],
)
def test_failed_creation_leaves_nothing_half_made(tmp_path: Path, case: str, expected: str) -> None:
    workflow = _broken_workflow(tmp_path, case)
    analyses = tmp_path / "analyses"
    analyses.mkdir()
    with pytest.raises(UsageError) as caught:
        create_analysis(
            CreateRequest(name="a", analyses_dir=analyses, workflow=workflow, templates=_templates(workflow))
        )
    assert expected in caught.value.detail
    assert ".creating-" not in caught.value.detail
    assert list(analyses.iterdir()) == []


def test_failed_creation_on_the_command_line_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    workflow = _broken_workflow(tmp_path, "missing")
    rc, out, err = run_cli(
        "create-analysis", "a", "--workflow", workflow, *_template_option(workflow), cwd=tmp_path
    )
    assert (rc, out) == (2, "")
    assert err.count("\n") == 1 and "nope.yaml.j2" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wf"]


def _templates(workflow: Path) -> Path | None:
    folder = workflow.parent / "templates"
    return folder if folder.is_dir() else None


def _template_option(workflow: Path) -> list[object]:
    folder = _templates(workflow)
    return ["--templates", folder] if folder else []


def test_templates_are_used_only_when_given_and_reported(run_cli, tmp_path: Path) -> None:
    """Templates beside a workflow are not picked up silently; `--templates` uses them and says which."""
    own = (templates_dir() / "configs/grid.yaml.j2").read_text(encoding="utf-8")
    workflow = _workflow_with(tmp_path, own + "# MINE\n")
    rc, out, err = run_cli("create-analysis", "a", "--workflow", workflow, "--json", cwd=tmp_path)
    assert rc == 0, err
    assert json.loads(out)["overridden_templates"] == []
    assert "# MINE" not in (tmp_path / "a/configs/grid.yaml").read_text()
    rc, out, err = run_cli(
        "create-analysis",
        "b",
        "--workflow",
        workflow,
        "--templates",
        workflow.parent / "templates",
        cwd=tmp_path,
    )
    assert rc == 0, err
    assert "template configs/grid.yaml.j2: yours" in out
    assert "# MINE" in (tmp_path / "b/configs/grid.yaml").read_text()


@pytest.mark.parametrize(
    "payload",
    [
        "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{% set x = namespace() %}{{ lipsum.__globals__['os'].system('touch PWNED') }}",
        "{{ name.__class__.__base__.__subclasses__() }}",
    ],
)
def test_a_planted_template_cannot_run_code(run_cli, tmp_path: Path, payload: str) -> None:
    workflow = _workflow_with(tmp_path, "analysis_name: {{ name | yaml }}\nx: " + payload + "\n")
    rc, out, err = run_cli(
        "create-analysis",
        "a",
        "--workflow",
        workflow,
        "--templates",
        workflow.parent / "templates",
        cwd=tmp_path,
    )
    assert rc == 2, out + err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "sandbox" in err or "undefined" in err, err
    assert not list(tmp_path.rglob("PWNED"))
    assert not (tmp_path / "a").exists()


def test_overwrite_backs_up_what_the_user_changed_and_says_so(run_cli, tmp_path: Path) -> None:
    rc, _, err = run_cli("create-analysis", "a", "--upload-site", "SITE-A", "-n", "7", cwd=tmp_path)
    assert rc == 0, err
    grid = tmp_path / "a/configs/grid.yaml"
    script = tmp_path / "a/data/download_and_merge.sh"
    edited = grid.read_text().replace("SITE-A", "SITE-B") + "# my note\n"
    grid.write_text(edited)
    untouched = script.read_bytes()
    rc, out, err = run_cli("create-analysis", "a", "--overwrite", "--json", cwd=tmp_path)
    assert rc == 0, err
    report = json.loads(out)
    assert list(report["backed_up"]) == ["configs/grid.yaml"]
    assert (tmp_path / "a" / report["backed_up"]["configs/grid.yaml"]).read_text() == edited
    assert script.read_bytes() == untouched
    rc, out, err = run_cli("create-analysis", "a", "--overwrite", cwd=tmp_path)
    assert rc == 0, err
    assert "replaced configs/grid.yaml" not in out  # nothing of the user's changed since


def _broken_workflow(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return _workflow_with(tmp_path, **{"configs/performance.yaml.j2": "configs/nope.yaml.j2"})
    if case == "syntax":
        return _workflow_with(tmp_path, "analysis_name: {{ name | yaml }}\n{% if %}\n")
    if case == "undefined":
        return _workflow_with(tmp_path, "analysis_name: {{ no_such_variable }}\n")
    if case == "invalid-config":
        return _workflow_with(tmp_path, "analysis_nam: {{ name | yaml }}\n")
    return _workflow_with(tmp_path, **{"version: 1": "version: [1"})


def test_failed_overwrite_leaves_the_analysis_as_it_was(run_cli, tmp_path: Path) -> None:
    analyses = tmp_path / "analyses"
    create_analysis(CreateRequest(name="a", analyses_dir=analyses))
    (analyses / "a/configs/grid.yaml").write_text("# edited\n", encoding="utf-8")
    before = snapshot(analyses / "a")
    workflow = _workflow_with(tmp_path, "analysis_name: {{ name | yaml }}\nbogus: 1\n")
    rc, _, err = run_cli(
        "create-analysis",
        "a",
        "--analyses-dir",
        analyses,
        "--workflow",
        workflow,
        *_template_option(workflow),
        "--overwrite",
        cwd=tmp_path,
    )
    assert rc == 2, err
    assert snapshot(analyses / "a") == before
    assert [p.name for p in analyses.iterdir()] == ["a"]


# ---------------------------------------------------------------- names

BAD_NAMES = [
    "",
    "..",
    ".",
    ".hidden",
    "a/b",
    "a b",
    "-x",
    "x" * (ANALYSIS_NAME_MAX + 1),
    "é",
    "ａ",
    "a\nb",
    "a'b",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_and_nothing_is_created(tmp_path: Path, name: str) -> None:
    target = tmp_path / "analyses"
    with pytest.raises(UsageError) as caught:
        create_analysis(CreateRequest(name=name, analyses_dir=target))
    assert "\n" not in caught.value.detail
    assert not target.exists()


@pytest.mark.parametrize("name", ["", "-x", "x" * (ANALYSIS_NAME_MAX + 1)])
def test_bad_names_on_the_command_line_give_one_line_and_exit_2(run_cli, tmp_path: Path, name: str) -> None:
    target = tmp_path / "analyses"
    rc, out, err = run_cli("create-analysis", "--analyses-dir", target, "--", name, cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err.startswith("gridpipe: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert not target.exists()


@pytest.mark.parametrize("name", ["a", "A.b_c-1", "9lives", "x" * ANALYSIS_NAME_MAX])
def test_good_names_are_accepted(tmp_path: Path, name: str) -> None:
    path = create_analysis(CreateRequest(name=name, analyses_dir=tmp_path)).path
    assert path == tmp_path.resolve() / name
    assert load(path / "configs/grid.yaml")["analysis_name"] == name


@given(st.text(alphabet=string.ascii_letters + string.digits + "._-/ é$", max_size=80))
def test_name_rule_is_exactly_the_documented_one(name: str) -> None:
    allowed = set(string.ascii_letters + string.digits + "._-")
    ok = 0 < len(name) <= ANALYSIS_NAME_MAX and set(name) <= allowed and name[0] not in "._-"
    assert (analysis_name_problem(name) is None) == ok


def test_longest_name_keeps_every_job_name_within_dirac_limits() -> None:
    name = "n" * ANALYSIS_NAME_MAX
    longest_run = 10**RUN_DIGITS_MAX - 1
    token = run_token(longest_run - 1, longest_run)
    workflow = load_workflow(skeleton_dir() / "workflow.yaml")
    names = [
        stage.job_name.format_map({"analysis": name, "particle": unit, "token": token})
        for stage in workflow.stages
        for unit in stage.units
    ]
    assert names
    assert max(len(n) for n in names) <= DIRAC_JOBNAME_MAX, max(names, key=len)
    with pytest.raises(UsageError):
        run_token(1, 10**RUN_DIGITS_MAX)


NO_LISTS = """version: 1
tree:
  directories: [results]
  files:
    - {path: configs/grid.yaml, template: configs/grid.yaml.j2}
stages:
  - name: scan
    kind: local
    units: [all]
    sweep: {name: cut, values: [0.5, 0.7]}
    job_name: "{analysis}_SCAN_{unit}"
    outdir: results
    command: ["{python} -c 'print(1)'"]
"""


def test_a_workflow_without_input_lists_is_created_checked_and_run(run_cli, tmp_path: Path) -> None:
    workflow = tmp_path / "scan.yaml"
    workflow.write_text(NO_LISTS)
    rc, out, err = run_cli("create-analysis", "s", "--workflow", workflow, cwd=tmp_path)
    assert rc == 0, err
    assert "reads no input list" in out and "simtel" not in out
    assert load(tmp_path / "s/configs/grid.yaml")["inputs"] == {}
    rc, out, err = run_cli("check", cwd=tmp_path / "s")
    assert rc == 0, out + err
    rc, out, err = run_cli("run", "--poll-interval", "0.05", cwd=tmp_path / "s", timeout=120)
    assert rc == 0, out + err
    assert "the analysis is complete" in out


def test_the_hint_names_the_lists_of_the_workflow(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli("create-analysis", "d", cwd=tmp_path)
    assert rc == 0, err
    assert "data/simtel/gamma_energy.list" in out
