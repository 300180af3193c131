"""The protopipe and ctapipe command lines gridpipe builds, as `--dry-run` shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import gridpipe

from gridpipe.analysis.create import CreateRequest, create_analysis

LFN = "/vo.cta.in2p3.fr/MC/PROD5/gamma/gamma_20deg_0deg_run{}___cta-prod5.simtel.zst"


@pytest.fixture
def analysis(tmp_path, request):
    path = create_analysis(
        CreateRequest(name="ana", analyses_dir=tmp_path, payload=request.param, n_file_per_job=2)
    ).path
    lst = path / "data" / "simtel" / "gamma_energy.list"
    lst.write_text("\n".join(LFN.format(run) for run in (7, 3, 5)) + "\n")
    return path


def _plan(path, *args):
    result = gridpipe("submit", "--dry-run", "--json", "-a", str(path), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["jobs"]


@pytest.mark.parametrize("analysis", ["protopipe"], indirect=True)
def test_protopipe_training_command(analysis):
    jobs = _plan(analysis, "--output_type", "TRAINING")
    assert [j["name"] for j in jobs] == [
        "ana_TRAINING_energy_gamma_run3-run5",
        "ana_TRAINING_energy_gamma_run7",
    ]
    assert jobs[0]["commands"] == [
        [
            "protopipe-TRAINING",
            "--config_file",
            "analysis.yaml",
            "--outfile",
            "TRAINING_energy_gamma_tail_run3-run5.h5",
            "--mode",
            "tail",
            "--infile_list",
            "gamma_20deg_0deg_run3___cta-prod5.simtel.zst",
            "gamma_20deg_0deg_run5___cta-prod5.simtel.zst",
        ]
    ]
    assert jobs[0]["outputs"][0].endswith(
        "/ana/data/TRAINING/for_energy_estimation/gamma/TRAINING_energy_gamma_tail_run3-run5.h5"
    )
    assert jobs[0]["sandbox"] == [str(analysis / "configs" / "analysis.yaml")]


@pytest.mark.parametrize("analysis", ["ctapipe"], indirect=True)
def test_ctapipe_runs_process_once_per_input_then_merges(analysis):
    jobs = _plan(analysis, "--output_type", "TRAINING", "--max-jobs", "1")
    process = [
        "ctapipe-process",
        "--config",
        "base_config.yaml",
        "--config",
        "ml_preprocessing_config.yaml",
        "--input",
        "gamma_20deg_0deg_run{}___cta-prod5.simtel.zst",
        "--output",
        "gamma_20deg_0deg_run{}___cta-prod5.processed.h5",
        "--provenance-log",
        "gamma_20deg_0deg_run{}___cta-prod5.provenance.log",
        "--overwrite",
        "--no-progress",
    ]
    assert jobs[0]["commands"] == [
        [arg.format(3) for arg in process],
        [arg.format(5) for arg in process],
        [
            "ctapipe-merge",
            "--input-dir",
            ".",
            "--pattern",
            "*.processed.h5",
            "--output",
            "TRAINING_energy_gamma_tail_run3-run5.h5",
            "--provenance-log",
            "merge.provenance.log",
            "--overwrite",
        ],
    ]
    assert jobs[0]["payload"] == "ctapipe"
    assert sorted(Path(p).name for p in jobs[0]["sandbox"]) == [
        "base_config.yaml",
        "ml_preprocessing_config.yaml",
    ]


@pytest.mark.parametrize("analysis", ["protopipe"], indirect=True)
def test_stage_needing_models_refuses_before_they_exist(analysis):
    (analysis / "data" / "simtel" / "gamma_classification.list").write_text(LFN.format(1) + "\n")
    result = gridpipe(
        "submit", "--output_type", "TRAINING", "--estimate-energy", "--dry-run", "-a", str(analysis)
    )
    assert result.returncode == 2
    assert "needs the models of stage 'model_energy'" in result.stderr
