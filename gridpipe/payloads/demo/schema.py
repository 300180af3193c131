"""Table layouts of every file the demo payload writes (one dtype per kind of table).

Simulation file (stand-in for a simtel file): `/simulation/events` (every simulated shower),
`/subarray/telescopes`, and `/images/{cam_id}` (parametrised images of triggered telescopes).
Training file: `/{cam_id}` (one row per selected image). DL2 file: `/dl2/events` (one row per event).
"""

from __future__ import annotations

import numpy as np

IMAGE_PARAMETERS = (
    "hillas_intensity",
    "hillas_width",
    "hillas_length",
    "hillas_skewness",
    "hillas_kurtosis",
    "hillas_r",
    "hillas_ellipticity",
    "n_pixels",
    "impact_dist",
    "h_max",
)
"""Per-image parameters; `impact_dist` and `h_max` are reconstructed (true value plus toy errors)."""

SIM_EVENT_DTYPE = np.dtype(
    [
        ("obs_id", "<i8"),
        ("event_id", "<i8"),
        ("true_particle_id", "<i4"),
        ("true_energy", "<f8"),
        ("true_core_x", "<f4"),
        ("true_core_y", "<f4"),
        ("true_h_max", "<f4"),
        ("n_images", "<i2"),
    ]
)

TELESCOPE_DTYPE = np.dtype([("tel_id", "<i2"), ("cam_id", "S16"), ("pos_x", "<f4"), ("pos_y", "<f4")])

_KEYS = [("obs_id", "<i8"), ("event_id", "<i8"), ("tel_id", "<i2")]
_PARAMS = [(name, "<i4" if name == "n_pixels" else "<f4") for name in IMAGE_PARAMETERS]

IMAGE_DTYPE = np.dtype(_KEYS + _PARAMS)
"""Rows of `/images/{cam_id}` in a simulation file."""


def training_dtype(with_reco_energy: bool) -> np.dtype:
    """Rows of a training table; `reco_energy` (TeV, event-level) only with --estimate-energy."""
    extra = [("n_tel", "<i2"), ("true_particle_id", "<i4"), ("true_energy", "<f8")]
    reco = [("reco_energy", "<f8")] if with_reco_energy else []
    return np.dtype(_KEYS + _PARAMS + extra + reco)


DL2_DTYPE = np.dtype(
    [
        ("obs_id", "<i8"),
        ("event_id", "<i8"),
        ("true_particle_id", "<i4"),
        ("true_energy", "<f8"),
        ("reco_energy", "<f8"),
        ("gammaness", "<f8"),
        ("n_tel", "<i2"),
    ]
)
"""Rows of `/dl2/events`: energies in TeV, gammaness in [0, 1], n_tel images used."""

CURVES_DTYPE = np.dtype(
    [
        ("energy_min", "<f8"),
        ("energy_max", "<f8"),
        ("energy_center", "<f8"),
        ("n_gamma", "<i8"),
        ("energy_bias", "<f8"),
        ("energy_resolution", "<f8"),
        ("gamma_efficiency", "<f8"),
        ("proton_rejection", "<f8"),
        ("electron_rejection", "<f8"),
    ]
)
"""Rows of `/performance/curves`: one per energy bin (TeV); NaN where a bin has no events."""
