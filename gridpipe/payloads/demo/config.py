"""The three config files the demo payload reads: analysis.yaml, a model config, performance.yaml.

Only the keys the demo uses are read; sections it implements (ImageSelection, Reconstruction, the
model and performance settings) are checked strictly, so that a typo is an error, not a no-op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gridpipe.payloads.demo.toymodel import CAMERAS, PARTICLES
from gridpipe.payloads.demo.yamlnode import (
    Node,
    is_int_in,
    is_name_list,
    is_number_in,
    is_range,
    is_text,
    load_mapping,
)

IMAGE_CUTS = {
    "charge": "hillas_intensity",
    "pixel": "n_pixels",
    "ellipticity": "hillas_ellipticity",
    "nominal_distance": "nominal_distance",
}
"""ImageSelection keys the demo applies and the image quantity each one cuts on."""


@dataclass(frozen=True)
class AnalysisSettings:
    """What the demo takes from analysis.yaml."""

    cam_ids: tuple[str, ...]
    mode: str
    cuts: dict[str, tuple[float, float]]
    min_tel: int


def _cam_ids(node: Node) -> tuple[str, ...]:
    cams = node.value("cam_id_list", is_name_list, "a list of camera ids", list(CAMERAS))
    for cam in cams:
        if cam not in CAMERAS:
            raise node.error("cam_id_list", f"camera {cam!r} is not simulated; use {', '.join(CAMERAS)}")
    return tuple(cams)


def load_analysis(path: Path) -> AnalysisSettings:
    """Read analysis.yaml: General.cam_id_list and mode, ImageSelection cuts, Reconstruction.min_tel."""
    root = load_mapping(path)
    general = root.section("General")
    selection = root.section("ImageSelection", required=False)
    selection.allow_only("source", *IMAGE_CUTS)
    cuts = {}
    for key in IMAGE_CUTS:
        if key in selection.data:
            low, high = selection.value(key, is_range, "a [min, max] pair of numbers")
            cuts[key] = (float(low), float(high))
    reco = root.section("Reconstruction", required=False)
    reco.allow_only("min_tel")
    min_tel = reco.value("min_tel", is_int_in(1, 1000), "an integer >= 1", 2)
    mode = general.value("mode", is_text, "a cleaning mode name", "tail")
    return AnalysisSettings(_cam_ids(general), mode, cuts, min_tel)


@dataclass(frozen=True)
class ModelSettings:
    """What the demo takes from a model config (RandomForestRegressor.yaml and friends)."""

    model_type: str
    method_name: str
    features: tuple[str, ...]
    train_fraction: float
    target: str
    log_target: bool
    cam_ids: tuple[str, ...] | None
    ignored_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """Last component of Method.name, used in model file names."""
        return self.method_name.rsplit(".", 1)[-1]


def load_model_config(path: Path) -> ModelSettings:
    """Read a model config: General.model_type, Method, FeatureList, Split.train_fraction."""
    root = load_mapping(path)
    root.allow_only("General", "Split", "Method", "FeatureList")
    general = root.section("General")
    model_type = general.value(
        "model_type", lambda v: v in ("regressor", "classifier"), "regressor or classifier"
    )
    cams = _cam_ids(general) if "cam_id_list" in general.data else None
    method = root.section("Method")
    method.allow_only("name", "target_name", "log_10_target", "parameters")
    name = method.value("name", is_text, "a method name such as sklearn.ensemble.RandomForestRegressor")
    default_target = "true_energy" if model_type == "regressor" else "label"
    target = method.value("target_name", is_text, "a column name", default_target)
    log_target = method.value("log_10_target", lambda v: isinstance(v, bool), "true or false", True)
    params = method.value("parameters", lambda v: v is None or isinstance(v, dict), "a mapping", None)
    features = root.value("FeatureList", is_name_list, "a list of image parameter names")
    split = root.section("Split", required=False)
    split.allow_only("train_fraction")
    fraction = split.value("train_fraction", is_number_in(0, 1, open_=True), "a number in (0, 1)", 0.8)
    return ModelSettings(
        model_type, name.strip(), tuple(features), float(fraction), target, log_target, cams, params or {}
    )


@dataclass(frozen=True)
class PerformanceSettings:
    """What the demo takes from performance.yaml."""

    template: str
    particles: tuple[str, ...]
    min_gammaness: float
    energy_edges_tev: tuple[float, ...]


def _edges(node: Node) -> tuple[float, ...]:
    node.allow_only("min_tev", "max_tev", "bins_per_decade")
    low = float(node.value("min_tev", is_number_in(1e-6, 1e6), "an energy in TeV (1e-6 to 1e6)", 0.02))
    high = float(node.value("max_tev", is_number_in(1e-6, 1e6), "an energy in TeV (1e-6 to 1e6)", 200.0))
    per_decade = node.value("bins_per_decade", is_int_in(1, 50), "an integer 1-50", 5)
    if high <= low:
        raise node.error("max_tev", f"must be above min_tev ({low})")
    n_bins = max(1, round(math.log10(high / low) * per_decade))
    return tuple(low * (high / low) ** (i / n_bins) for i in range(n_bins + 1))


def _template(value: Any) -> bool:
    return isinstance(value, str) and value.count("{}") == 1 and "/" not in value


def load_performance(path: Path) -> PerformanceSettings:
    """Read performance.yaml: input template, particles, gammaness cut and energy bins."""
    root = load_mapping(path)
    general = root.section("General")
    template = general.value("template_input_file", _template, "a file name with one '{}' for the particle")
    particles = general.value("particles", is_name_list, "a list of particles", list(PARTICLES))
    for particle in particles:
        if particle not in PARTICLES:
            raise general.error("particles", f"unknown particle {particle!r}; use {', '.join(PARTICLES)}")
    if "gamma" not in particles:
        raise general.error("particles", "must include gamma (efficiency and resolution need gammas)")
    analysis = root.section("Analysis", required=False)
    analysis.allow_only("obs_time", "min_gammaness", "energy_bins")
    cut = analysis.value("min_gammaness", is_number_in(0, 1), "a number in [0, 1]", 0.5)
    edges = _edges(analysis.section("energy_bins", required=False))
    return PerformanceSettings(template, tuple(particles), float(cut), edges)
