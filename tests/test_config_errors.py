"""Config errors name the file, the key path, the line and what is allowed; typos get "did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridpipe.analysis.check import check_analysis
from gridpipe.analysis.config import CONFIG_MODELS, GridConfig, ModelConfig
from gridpipe.analysis.configio import load_model
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.skeleton import WorkflowSpec, load_workflow
from gridpipe.core.exceptions import ConfigError, ConfigErrors
from gridpipe.core.plugins import Group, available


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    """A fresh analysis made by the real create-analysis logic."""
    return create_analysis(CreateRequest(name="cfg", analyses_dir=tmp_path, grid_home="/vo/user/j/jdoe")).path


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first `old` by `new` in `path`; return the 1-based line where `new` starts."""
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    at = text.index(old)
    path.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    return text[:at].count("\n") + 1


def errors_of(model: type, path: Path) -> list[ConfigError]:
    """The errors `load_model` raises for `path` (fails the test if it loads)."""
    with pytest.raises((ConfigError, ConfigErrors)) as caught:
        load_model(model, path)
    exc = caught.value
    found = exc.errors if isinstance(exc, ConfigErrors) else [exc]
    assert exc.exit_code == 2
    for error in found:
        assert error.file == str(path)
        assert error.detail.startswith(f"{path}:{error.line}: "), error.detail
        assert "\n" not in error.detail
    return found


def the_error(model: type, path: Path) -> ConfigError:
    found = errors_of(model, path)
    assert len(found) == 1, [e.detail for e in found]
    return found[0]


def test_fresh_configs_load(analysis: Path) -> None:
    for name, model in CONFIG_MODELS.items():
        load_model(model, analysis / "configs" / name)
    load_workflow(analysis / "configs/workflow.yaml")


def test_misspelt_top_level_key_is_an_error_with_a_suggestion(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, "\njobs:\n", "\njob:\n") + 1
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("job", line)
    assert "unknown key (did you mean 'jobs'?)" in error.message
    assert "allowed here: analysis_name, grid, backend, storage, payload, jobs, inputs" in error.message


def test_misspelt_nested_key_names_its_full_path_and_line(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, "  banned_sites:", "  banned_site:")
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("grid.banned_site", line)
    assert "did you mean 'banned_sites'?" in error.message
    assert "user_name" in error.message  # the allowed keys of that section


def test_unknown_key_without_a_close_match_lists_what_is_allowed(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, "  submit_batch: 0", "  submit_batch: 0\n  zzz: 1") + 1
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("backend.zzz", line)
    assert "did you mean" not in error.message
    installed = ", ".join(available(Group.backends))
    assert f"allowed here: name, submit_batch, {installed}" in error.message  # the installed backends


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("n_file_per_job: 10", "n_file_per_job: ten", "jobs.n_file_per_job", ["integer", "'ten'"]),
        ("n_file_per_job: 10", "n_file_per_job: 0", "jobs.n_file_per_job", ["greater than or equal to 1"]),
        (
            'name: "local"',
            'name: "lokal"',
            "backend.name",
            ["not installed (did you mean 'local'?)", ", ".join(available(Group.backends))],
        ),
        ('mode: "tail"', 'mode: "tails"', "payload.mode", ["'tail'", "'wave'"]),
        ('home: "/vo/user/j/jdoe"', 'home: "vo/user/j/jdoe"', "grid.home", ["absolute"]),
        ("banned_sites: []", "banned_sites: LCG.x", "grid.banned_sites", ["list"]),
        ('gamma_perf: "data/simtel/gamma_perf.list"', 'gamma_perf: "../x.list"', "inputs.gamma_perf", [".."]),
    ],
)
def test_bad_values_name_the_key_the_line_and_what_is_allowed(
    analysis: Path, old: str, new: str, key: str, words: list[str]
) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, old, new)
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == (key, line)
    for word in words:
        assert word in error.message, error.message


def test_missing_key_is_reported_at_its_section(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    text = grid.read_text(encoding="utf-8")
    section = text[: text.index("\ngrid:\n")].count("\n") + 2
    edit(grid, '  user_name: "jdoe"\n', "")
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("grid.user_name", section)
    assert "required key is missing" in error.message


def test_several_errors_are_reported_together(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    first = edit(grid, "n_jobs_max: -1", "n_jobs_max: -5")
    second = edit(grid, "max_attempts: 3", "max_attempt: 3")
    found = errors_of(GridConfig, grid)
    assert sorted((e.key, e.line) for e in found) == sorted(
        [("jobs.n_jobs_max", first), ("jobs.max_attempt", second)]
    )


def test_duplicate_keys_are_errors_not_silently_the_last_one(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, "  max_attempts: 3", "  max_attempts: 3\n  max_attempts: 50") + 1
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("jobs.max_attempts", line)
    assert f"first on line {line - 1}" in error.message


@pytest.mark.parametrize(
    ("old", "new", "line_offset"),
    [
        ('  path: "cta_analyses"', ' path: "cta_analyses"', 0),  # bad indentation
        ("  banned_sites: []", "  banned_sites: [a, b]]", 0),  # unbalanced flow list
        ('  user_name: "jdoe"', "  user_name: jdoe: x", 0),  # ": " in a plain value
        ("    max_workers: 0", "\tmax_workers: 0", 0),  # a tab
    ],
)
def test_broken_yaml_reports_the_line(analysis: Path, old: str, new: str, line_offset: int) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, old, new) + line_offset
    error = the_error(GridConfig, grid)
    assert error.line == line
    assert error.message.startswith("invalid YAML: ") and error.message.endswith("; fix the syntax")


def test_a_file_that_is_not_a_mapping_is_an_error(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    grid.write_text("- just\n- a list\n", encoding="utf-8")
    error = the_error(GridConfig, grid)
    assert error.line == 1 and "mapping" in error.message


def test_model_config_typo_gets_a_suggestion(analysis: Path) -> None:
    config = analysis / "configs/RandomForestRegressor.yaml"
    line = edit(config, "\nFeatureList:", "\nFeatureLst:") + 1
    missing, unknown = sorted(errors_of(ModelConfig, config), key=lambda e: e.key)
    assert (unknown.key, unknown.line) == ("FeatureLst", line)
    assert "did you mean 'FeatureList'?" in unknown.message
    assert (missing.key, missing.message) == (
        "FeatureList",
        "key 'FeatureList': required key is missing; add it",
    )


def test_nested_model_config_typo_gets_a_suggestion(analysis: Path) -> None:
    config = analysis / "configs/RandomForestClassifier.yaml"
    line = edit(config, "  data_bkg_file:", "  data_bkg_fle:")
    error = the_error(ModelConfig, config)
    assert (error.key, error.line) == ("General.data_bkg_fle", line)
    assert "did you mean 'data_bkg_file'?" in error.message


def test_workflow_typo_gets_a_suggestion(analysis: Path) -> None:
    workflow = analysis / "configs/workflow.yaml"
    line = edit(workflow, "  directories:", "  directorys:")
    error = the_error(WorkflowSpec, workflow)
    assert (error.key, error.line) == ("tree.directorys", line)
    assert "did you mean 'directories'?" in error.message


def test_a_long_wrong_value_is_cut_short_and_a_wrong_section_not_repeated(analysis: Path) -> None:
    grid = analysis / "configs/grid.yaml"
    line = edit(grid, "banned_sites: []", f"banned_sites: {'x' * 5000}")
    error = the_error(GridConfig, grid)
    assert (error.key, error.line) == ("grid.banned_sites", line)
    assert "(got 'xxx" in error.message and error.message.endswith("...)") and len(error.message) < 200
    workflow = analysis / "configs/workflow.yaml"
    values = ", ".join(str(i) for i in range(1000))
    line = edit(
        workflow,
        "  - name: training_energy\n",
        f"  - name: broken\n    sweep: {{name: i, values: [{values}]}}\n    job_name: x\n    command: [noop]\n  - name: training_energy\n",
    )
    error = the_error(WorkflowSpec, workflow)
    assert error.line == line and "a grid stage needs input_list" in error.message
    assert "999" not in error.detail and len(error.detail) < 400, error.detail


def test_check_reports_config_errors_of_every_file_at_once(analysis: Path) -> None:
    grid_line = edit(analysis / "configs/grid.yaml", "\njobs:\n", "\njob:\n") + 1
    (analysis / "configs/performance.yaml").unlink()
    analysis_line = edit(analysis / "configs/analysis.yaml", "  site: north", "  site: middle")
    errors = [f for f in check_analysis(analysis) if f.level == "error"]
    found = {(Path(f.file).name, f.line) for f in errors}
    assert found == {("grid.yaml", grid_line), ("analysis.yaml", analysis_line), ("performance.yaml", None)}
    missing = next(f for f in errors if f.file.endswith("performance.yaml"))
    assert "--overwrite" in missing.message


def test_check_on_the_command_line_prints_file_line_key_and_exits_2(run_cli, analysis: Path) -> None:
    line = edit(analysis / "configs/grid.yaml", "  banned_sites:", "  banned_site:")
    rc, out, err = run_cli("check", "--analysis-path", analysis, cwd=analysis.parent)
    assert rc == 2, (out, err)
    expected = (
        f"error: {analysis}/configs/grid.yaml:{line}: key 'grid.banned_site': unknown key "
        "(did you mean 'banned_sites'?)"
    )
    assert expected in out
    assert "1 error(s)" in out
