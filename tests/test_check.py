"""`gridpipe check` (input lists, exit codes, finding the analysis) and `gridpipe schema`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridpipe.analysis.check import check_analysis
from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.lists import read_list, scan_list
from gridpipe.analysis.locate import find_analysis
from gridpipe.core.exceptions import AnalysisNotFoundError, ConfigError
from gridpipe.service.context import Analysis

LISTS = [
    "gamma_energy",
    "gamma_classification",
    "proton_classification",
    "gamma_perf",
    "proton_perf",
    "electron_perf",
]
GOOD = "/vo.cta.in2p3.fr/MC/PROD5/gamma/gamma_20deg_0deg_run{}___cta-prod5.simtel.zst"


@pytest.fixture
def analysis(tmp_path: Path) -> Path:
    """A fresh analysis made by the real create-analysis logic."""
    return create_analysis(CreateRequest(name="chk", analyses_dir=tmp_path / "analyses")).path


def fill_lists(analysis: Path) -> None:
    """Put two distinct valid LFNs in every input list."""
    for name in LISTS:
        lines = [GOOD.format(f"{name}{i}") for i in (1, 2)]
        (analysis / f"data/simtel/{name}.list").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- findings


def test_fresh_analysis_has_only_warnings_for_its_empty_lists(analysis: Path) -> None:
    findings = check_analysis(analysis)
    assert {f.level for f in findings} == {"warning"}
    assert sorted(Path(f.file).name for f in findings) == sorted(f"{name}.list" for name in LISTS)
    assert all("is empty" in f.message for f in findings)


def test_filled_lists_give_no_findings(analysis: Path) -> None:
    fill_lists(analysis)
    assert check_analysis(analysis) == []


def test_bad_lfns_are_errors_with_their_lines_and_duplicates_are_reported(analysis: Path) -> None:
    fill_lists(analysis)
    listing = analysis / "data/simtel/gamma_energy.list"
    listing.write_text(
        "\n".join(
            [
                "# a comment",  # 1
                "",  # 2
                GOOD.format(1),  # 3
                "gamma/relative.simtel.zst",  # 4
                "/vo/MC/../escape.simtel.zst",  # 5
                "/vo/MC/with space.simtel.zst",  # 6
                "   " + GOOD.format(1) + "  ",  # 7: duplicate of line 3 (surrounding blanks ignored)
                "/vo//empty/component.zst",  # 8
                "/vo/MC/./dot.zst",  # 9
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    findings = [f for f in check_analysis(analysis) if f.file == str(listing)]
    errors = {f.line: f.message for f in findings if f.level == "error"}
    warnings = {f.line: f.message for f in findings if f.level == "warning"}
    assert sorted(errors) == [4, 5, 6, 8, 9]
    assert "absolute" in errors[4]
    assert "'..'" in errors[5]
    assert "spaces" in errors[6]
    assert "'//'" in errors[8]
    assert all("write one absolute LFN per line" in message for message in errors.values())
    assert warnings == {7: f"duplicate of line 3: {GOOD.format(1)}"}
    lfns, list_errors, duplicates = scan_list(listing)
    assert lfns == [GOOD.format(1)]
    assert [issue.line for issue in list_errors] == [4, 5, 6, 8, 9]
    assert [issue.line for issue in duplicates] == [7]
    with pytest.raises(ConfigError) as caught:
        read_list(listing)
    assert caught.value.line == 4 and caught.value.file == str(listing)


def test_missing_or_unreadable_list_is_an_error(analysis: Path) -> None:
    fill_lists(analysis)
    (analysis / "data/simtel/proton_perf.list").unlink()
    (analysis / "data/simtel/gamma_perf.list").write_bytes(b"/vo/\xff\xfe\n")
    errors = {Path(f.file).name: f.message for f in check_analysis(analysis) if f.level == "error"}
    assert set(errors) == {"proton_perf.list", "gamma_perf.list"}
    assert "not found" in errors["proton_perf.list"]
    assert "UTF-8" in errors["gamma_perf.list"]


def test_renamed_folder_is_a_warning_because_job_names_use_analysis_name(analysis: Path) -> None:
    fill_lists(analysis)
    moved = analysis.rename(analysis.with_name("renamed"))
    findings = check_analysis(moved)
    assert [(f.level, Path(f.file).name) for f in findings] == [("warning", "grid.yaml")]
    assert "'chk'" in findings[0].message and "'renamed'" in findings[0].message


def test_broken_metadata_is_an_error(analysis: Path) -> None:
    fill_lists(analysis)
    (analysis / "analysis_metadata.yaml").write_text("- not\n- a mapping\n", encoding="utf-8")
    findings = check_analysis(analysis)
    assert [(f.level, Path(f.file).name, f.line) for f in findings] == [
        ("error", "analysis_metadata.yaml", 1)
    ]


# ---------------------------------------------------------------- the command


def test_check_of_a_fresh_analysis_exits_0_with_warnings(run_cli, analysis: Path) -> None:
    rc, out, err = run_cli("check", "-a", analysis, cwd=analysis.parent)
    assert rc == 0, err
    assert out.count("warning: ") == len(LISTS)
    assert out.rstrip().endswith(f"{analysis}: 0 error(s), {len(LISTS)} warning(s)")


def test_check_json_output(run_cli, analysis: Path) -> None:
    listing = analysis / "data/simtel/gamma_energy.list"
    listing.write_text("relative.zst\n", encoding="utf-8")
    rc, out, err = run_cli("check", "--json", "--analysis-path", analysis, cwd=analysis.parent)
    assert rc == 2, err
    report = json.loads(out)
    assert report["analysis"] == str(analysis) and report["ok"] is False
    assert report["findings"][0] == {
        "level": "error",
        "file": str(listing),
        "line": 1,
        "message": "an LFN must be absolute (start with '/'): 'relative.zst'; write one absolute LFN per line",
    }
    assert [f["level"] for f in report["findings"]].count("warning") == len(LISTS) - 1


def test_check_finds_the_analysis_from_a_subfolder(run_cli, analysis: Path, tmp_path: Path) -> None:
    fill_lists(analysis)
    rc, out, err = run_cli("check", cwd=analysis / "data/DL2/gamma")
    assert rc == 2 and "are not in the local storage" in out  # listed inputs must be in the storage
    with Analysis.open(analysis) as an:
        for name in LISTS:
            for lfn in read_list(analysis / f"data/simtel/{name}.list"):
                src = tmp_path / "sim"
                src.write_text(lfn)
                an.storage.put(src, lfn)
    rc, out, err = run_cli("check", cwd=analysis / "data/DL2/gamma")
    assert rc == 0, out + err
    assert f"{analysis}: 0 error(s)," in out
    assert find_analysis(analysis / "estimators/energy_regressor") == analysis


def test_check_outside_an_analysis_is_a_clear_error(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli("check", cwd=tmp_path)
    assert (rc, out) == (2, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the current directory {tmp_path} is not inside a gridpipe analysis" in err
    assert "create-analysis" in err and "--analysis-path" in err
    with pytest.raises(AnalysisNotFoundError, match="no such directory"):
        find_analysis(tmp_path / "nowhere")


# ---------------------------------------------------------------- schema


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _conforms(data: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """A small structural check (keys, required keys, nesting) for when jsonschema is not installed."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        options = [_conforms(data, option, root, where) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else options[0]
    if schema.get("type") == "object" and "properties" in schema:
        if not isinstance(data, dict):
            return [f"{where}: not a mapping"]
        problems = [f"{where}.{key}: required" for key in schema.get("required", []) if key not in data]
        for key, value in data.items():
            if key not in schema["properties"]:
                problems.append(f"{where}.{key}: not in the schema")
            else:
                problems += _conforms(value, schema["properties"][key], root, f"{where}.{key}")
        return problems
    if schema.get("type") == "array" and isinstance(data, list) and "items" in schema:
        return [
            p for i, item in enumerate(data) for p in _conforms(item, schema["items"], root, f"{where}[{i}]")
        ]
    return []


def _validate(data: Any, schema: dict[str, Any]) -> list[str]:
    if importlib.util.find_spec("jsonschema") is not None:
        import jsonschema

        return [error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    return _conforms(data, schema, schema)


def test_schemas_validate_the_configs_of_a_fresh_analysis(run_cli, analysis: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "schemas"
    rc, out, err = run_cli("schema", "-o", out_dir, cwd=tmp_path)
    assert rc == 0, err
    assert out.count("wrote ") == 5
    schemas = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in out_dir.iterdir()}
    assert set(schemas) == {
        "grid.schema.json",
        "analysis.schema.json",
        "model.schema.json",
        "performance.schema.json",
        "workflow.schema.json",
    }
    grid_schema = schemas["grid.schema.json"]
    assert set(grid_schema["properties"]) >= {
        "analysis_name",
        "grid",
        "backend",
        "storage",
        "payload",
        "jobs",
        "inputs",
    }
    assert grid_schema["additionalProperties"] is False
    pairs = {
        "grid.yaml": "grid.schema.json",
        "analysis.yaml": "analysis.schema.json",
        "RandomForestRegressor.yaml": "model.schema.json",
        "AdaBoostRegressor.yaml": "model.schema.json",
        "RandomForestClassifier.yaml": "model.schema.json",
        "performance.yaml": "performance.schema.json",
        "workflow.yaml": "workflow.schema.json",
    }
    for config, schema in pairs.items():
        data = yaml.safe_load((analysis / "configs" / config).read_text(encoding="utf-8"))
        assert _validate(data, schemas[schema]) == [], config
    broken = yaml.safe_load((analysis / "configs/grid.yaml").read_text(encoding="utf-8"))
    broken["grid"]["banned_site"] = broken["grid"].pop("banned_sites")
    assert _validate(broken, grid_schema) != []
