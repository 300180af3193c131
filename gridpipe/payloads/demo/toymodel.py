"""The toy physics of the demo simulation: array layout, spectra, light pool and image shapes.

Nothing here is a real air-shower simulation. The model is only rich enough that an analysis has
something honest to learn: intensity grows with energy and falls with impact distance, the height
of shower maximum falls with energy, and hadron images are wider, rounder and more irregular.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PARTICLE_IDS = {"gamma": 0, "electron": 1, "proton": 101}
"""Primary ids as sim_telarray numbers them."""

OBS_ALTITUDE_M = 2200.0
TRIGGER_PE = 30.0
"""A telescope records an image when its intensity reaches this many photo-electrons."""


@dataclass(frozen=True)
class Camera:
    """A camera type: photo-electrons per TeV inside the light pool, field-of-view radius in degrees."""

    pe_per_tev: float
    fov_radius_deg: float


CAMERAS = {"LSTCam": Camera(pe_per_tev=3000.0, fov_radius_deg=2.25), "NectarCam": Camera(800.0, 4.0)}


def telescope_layout() -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Tel ids, camera ids and ground positions (m): 4 LSTs in a square, 8 NectarCam MSTs on a ring."""
    angles = np.arange(8) * np.pi / 4
    xs = np.concatenate([[60.0, -60.0, -60.0, 60.0], 170.0 * np.cos(angles)])
    ys = np.concatenate([[60.0, 60.0, -60.0, -60.0], 170.0 * np.sin(angles)])
    cams = ["LSTCam"] * 4 + ["NectarCam"] * 8
    return np.arange(1, 13, dtype=np.int16), cams, xs, ys


@dataclass(frozen=True)
class ParticleModel:
    """Spectrum, scatter area and image-shape parameters of one primary type."""

    index: float
    e_min_tev: float
    e_max_tev: float
    max_impact_m: float
    diffuse_deg: float
    light_yield: float
    intensity_sigma: float
    hmax_offset_m: float
    hmax_sigma_m: float
    width_deg: float
    width_sigma: float
    length_base: float
    length_per_m: float
    length_sigma: float
    skew_amplitude: float
    skew_sigma: float


PARTICLES = {
    "gamma": ParticleModel(
        index=2.0,
        e_min_tev=0.03,
        e_max_tev=100.0,
        max_impact_m=350.0,
        diffuse_deg=0.0,
        light_yield=1.0,
        intensity_sigma=0.25,
        hmax_offset_m=0.0,
        hmax_sigma_m=300.0,
        width_deg=0.035,
        width_sigma=0.15,
        length_base=1.9,
        length_per_m=1 / 90,
        length_sigma=0.12,
        skew_amplitude=0.5,
        skew_sigma=0.15,
    ),
    "electron": ParticleModel(
        index=2.2,
        e_min_tev=0.03,
        e_max_tev=30.0,
        max_impact_m=450.0,
        diffuse_deg=0.8,
        light_yield=1.0,
        intensity_sigma=0.28,
        hmax_offset_m=300.0,
        hmax_sigma_m=350.0,
        width_deg=0.037,
        width_sigma=0.17,
        length_base=1.9,
        length_per_m=1 / 90,
        length_sigma=0.14,
        skew_amplitude=0.45,
        skew_sigma=0.2,
    ),
    "proton": ParticleModel(
        index=2.0,
        e_min_tev=0.1,
        e_max_tev=300.0,
        max_impact_m=500.0,
        diffuse_deg=0.8,
        light_yield=0.35,
        intensity_sigma=0.6,
        hmax_offset_m=-500.0,
        hmax_sigma_m=1100.0,
        width_deg=0.06,
        width_sigma=0.35,
        length_base=1.5,
        length_per_m=1 / 150,
        length_sigma=0.35,
        skew_amplitude=0.0,
        skew_sigma=0.45,
    ),
}
"""Toy models per primary; protons need ~3x the energy of a gamma for the same light."""


def power_law(rng: np.random.Generator, n: int, model: ParticleModel) -> np.ndarray:
    """Energies (TeV) drawn from E^-index between the model's limits (inverse transform)."""
    g = 1.0 - model.index
    lo, hi = model.e_min_tev**g, model.e_max_tev**g
    return (lo + rng.random(n) * (hi - lo)) ** (1.0 / g)


def shower_max(rng: np.random.Generator, energy: np.ndarray, model: ParticleModel) -> np.ndarray:
    """True height (m a.s.l.) of shower maximum: lower for higher energies, wider spread for hadrons."""
    mean = 8500.0 + model.hmax_offset_m - 1200.0 * np.log10(energy)
    return np.maximum(mean + rng.normal(0.0, model.hmax_sigma_m, energy.shape), OBS_ALTITUDE_M + 1500.0)


def mean_intensity(energy: np.ndarray, dist: np.ndarray, pe_per_tev: np.ndarray, yield_: float) -> np.ndarray:
    """Expected image intensity (p.e.): flat light pool to 120 m, exponential fall beyond."""
    scale = np.clip(80.0 * (1.0 + 0.3 * np.log10(energy)), 30.0, 200.0)
    lateral = np.where(dist < 120.0, 1.0, np.exp(-(dist - 120.0) / scale))
    return pe_per_tev * energy * yield_ * lateral


def image_shapes(
    rng: np.random.Generator, intensity: np.ndarray, dist: np.ndarray, h_max: np.ndarray, m: ParticleModel
) -> dict[str, np.ndarray]:
    """Hillas-like parameters of recorded images from intensity, true impact and true shower max."""
    n = intensity.shape

    def lognormal(sigma: float) -> np.ndarray:
        return np.exp(rng.normal(0.0, sigma, n))

    width = m.width_deg * (intensity / 100.0) ** 0.08 * lognormal(m.width_sigma)
    length = width * (m.length_base + dist * m.length_per_m) * lognormal(m.length_sigma)
    geometric = np.degrees(np.arctan(dist / (h_max - OBS_ALTITUDE_M)))
    offset = rng.rayleigh(m.diffuse_deg, n) if m.diffuse_deg > 0 else 0.0
    cog = np.abs(np.hypot(0.85 * geometric, offset) + rng.normal(0.0, 0.05, n))
    skew = m.skew_amplitude * np.tanh(dist / 200.0) + 0.1 + rng.normal(0.0, m.skew_sigma, n)
    kurt = 2.5 + np.abs(rng.normal(0.0, 0.3 + 2.0 * m.width_sigma, n))
    pixels = np.maximum(1, np.rint((intensity / 10.0) ** 0.75 * lognormal(0.2)))
    return {
        "hillas_width": width,
        "hillas_length": length,
        "hillas_skewness": skew,
        "hillas_kurtosis": kurt,
        "hillas_r": cog,
        "n_pixels": pixels,
    }
