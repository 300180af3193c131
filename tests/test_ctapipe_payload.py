"""The ctapipe payload without running ctapipe: the analysis it creates, its failure reasons, the output
checks (with real HDF5 files), and protopipe's `status` check."""

from __future__ import annotations

import pytest
import yaml
from dl2_files import h5_with_tables

from gridpipe.analysis.create import CreateRequest, create_analysis
from gridpipe.analysis.skeleton import load_workflow
from gridpipe.payloads.builtin import ProtopipePayload
from gridpipe.payloads.ctapipe.payload import EVENT_NODES, CtapipePayload, last_error_line

CONFIG_ERROR = (
    "2026-11-30 16:23:15,392 \x1b[1;33mWARNING\x1b[0m [ctapipe.core.telescope_component] "
    "(telescope_component.attach_subarray): TelescopeParameter type argument '*FlashCam' did not match\n"
    "2026-11-30 16:23:15,393 \x1b[1;31mERROR\x1b[0m [ctapipe.ctapipe-process] (tool.run): Config option "
    "`image_cleaner_typo` not recognized by `ImageProcessor`.  Did you mean `image_cleaner_type`?\n"
    "2026-11-30 16:23:15,393 \x1b[1;31mERROR\x1b[0m [ctapipe.ctapipe-process] (tool.run): Use --help for "
    "more info\n"
)
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "expression_engine.py", line 49, in __call__\n'
    "    raise ExpressionError(\n"
    "ctapipe.core.expression_engine.ExpressionError: Error evaluating expression 'x': name 'x' is not "
    "defined\n"
)


CTAPIPE_STAGES = (
    "training_energy",
    "training_classification",
    "dl2",
    "model_energy",
    "energy_classification",
    "model_classification",
    "dl2_models",
    "optimize_cuts",
    "performance",
)
"""The ctapipe workflow's stages, in order."""


def test_create_writes_ctapipes_own_configs_and_workflow(tmp_path):
    path = create_analysis(CreateRequest(name="cta", analyses_dir=tmp_path, payload="ctapipe")).path
    configs = {p.name for p in (path / "configs").iterdir()}
    assert configs == {
        "grid.yaml",
        "workflow.yaml",
        "base_config.yaml",
        "ml_preprocessing_config.yaml",
        "train_energy_regressor.yaml",
        "train_particle_classifier.yaml",
        "optimize_cuts.yaml",
        "compute_irf.yaml",
    }
    for name in configs:
        text = (path / "configs" / name).read_text()
        assert "{{" not in text and "{%" not in text, name
        yaml.safe_load(text)
    base = yaml.safe_load((path / "configs" / "base_config.yaml").read_text())
    assert base["DataWriter"]["Contact"]["organization"] == "CTAO"
    cleaner = base["ImageProcessor"]["TailcutsImageCleaner"]
    assert cleaner["picture_threshold_pe"][0] == ["type", "*", 8.0]  # every telescope type has a value
    # the models the event selection and the IRF read are the ones trained
    energy = yaml.safe_load((path / "configs" / "train_energy_regressor.yaml").read_text())
    classifier = yaml.safe_load((path / "configs" / "train_particle_classifier.yaml").read_text())
    for name in ("optimize_cuts.yaml", "compute_irf.yaml"):
        pre = yaml.safe_load((path / "configs" / name).read_text())["DL2EventPreprocessor"]
        assert pre["energy_reconstructor"] == energy["TrainEnergyRegressor"]["EnergyRegressor"]["model_cls"]
        assert (
            pre["gammaness_classifier"]
            == classifier["TrainParticleClassifier"]["ParticleClassifier"]["model_cls"]
        )
        assert ">= 4" in pre["DL2EventQualityQuery"]["quality_criteria"][0][1]
    workflow = load_workflow(path / "configs" / "workflow.yaml")
    assert [s.name for s in workflow.stages] == list(CTAPIPE_STAGES)
    assert (path / "data" / "TRAINING" / "for_particle_classification" / "proton").is_dir()


def test_every_ctapipe_command_overwrites_and_logs_its_provenance():
    from gridpipe.core.resources import skeleton_dir

    workflow = load_workflow(skeleton_dir() / "workflow_ctapipe.yaml")
    lines = [line for stage in workflow.stages for line in stage.commands_for("ctapipe")]
    tools = [line for line in lines if line.startswith("ctapipe-")]
    assert len(tools) == 12
    for line in tools:
        assert " --overwrite" in line and " --provenance-log " in line, line


def test_last_error_line_is_the_tools_message():
    assert last_error_line(CONFIG_ERROR) == (
        "Config option `image_cleaner_typo` not recognized by `ImageProcessor`. Did you mean `image_cleaner_type`?"
    )
    assert last_error_line(TRACEBACK).startswith("ctapipe.core.expression_engine.ExpressionError: Error")
    assert last_error_line("progress 10%\rprogress 100%\nsomething broke\n") == "something broke"
    assert last_error_line("") is None
    traitlets = "[ctapipe-merge] CRITICAL | Unrecognized flag: '--bogus'\nUse --help for more info\n"
    assert last_error_line(traitlets) == "Unrecognized flag: '--bogus'"


def test_exit_codes_are_worded():
    payload = CtapipePayload()
    reason = payload.failure_reason("ctapipe-process", 2, CONFIG_ERROR)
    assert reason is not None and reason.startswith(
        "configuration error (ctapipe-process exited with code 2): "
    )
    assert "image_cleaner_typo" in reason
    reason = payload.failure_reason("ctapipe-train-energy-regressor", 1, TRACEBACK)
    assert reason is not None and reason.startswith("tool failure (ctapipe-train-energy-regressor exited")
    assert payload.failure_reason("ctapipe-process", 130, "") is None  # gridpipe's own words


def test_ctapipe_outputs_are_checked(tmp_path):
    payload = CtapipePayload()
    assert payload.output_problem(h5_with_tables(tmp_path / "good.h5", EVENT_NODES)) is None
    problem = payload.output_problem(h5_with_tables(tmp_path / "part.h5", EVENT_NODES[:1]))
    assert problem is not None and "lacks /dl1/event/subarray/trigger" in problem
    broken = tmp_path / "broken.h5"
    broken.write_bytes(h5_with_tables(tmp_path / "x.h5", EVENT_NODES).read_bytes()[:2000])
    problem = payload.output_problem(broken)
    assert problem is not None and "not a readable HDF5 file" in problem


@pytest.mark.parametrize(("status", "fine"), [("complete", True), ("running", False), (None, False)])
def test_protopipe_outputs_must_say_complete(tmp_path, status, fine):
    problem = ProtopipePayload().output_problem(h5_with_tables(tmp_path / "out.h5", ["/gamma/table"], status))
    assert (problem is None) == fine
    if not fine:
        assert "not 'complete'" in problem
