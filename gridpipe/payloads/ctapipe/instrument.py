"""A toy telescope array built from ctapipe's instrument model, offline (no named camera geometry, which
would be downloaded): four MST-sized telescopes with a camera of 32 x 32 square pixels
(0.2 deg each, 6.4 deg across)."""

from __future__ import annotations

from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import EarthLocation

FOCAL_LENGTH = 16.0 * u.m
CAMERA_HALF_WIDTH_M = 0.9
CAMERA_PIXELS_PER_SIDE = 32
TELESCOPE_POSITIONS_M = {
    1: (-80.0, -80.0, 0.0),
    2: (80.0, -80.0, 0.0),
    3: (-80.0, 80.0, 0.0),
    4: (80.0, 80.0, 0.0),
}
SITE = EarthLocation(lon=-17.89 * u.deg, lat=28.76 * u.deg, height=2150 * u.m)
"""A site only so that coordinates have one; the toy images do not depend on it."""


def toy_subarray() -> Any:
    """The toy array as a ctapipe SubarrayDescription (type name `MST_MST_ToyCam`)."""
    from ctapipe.instrument import (
        CameraDescription,
        CameraGeometry,
        CameraReadout,
        OpticsDescription,
        ReflectorShape,
        SizeType,
        SubarrayDescription,
        TelescopeDescription,
    )

    half = CAMERA_HALF_WIDTH_M
    geometry = CameraGeometry.make_rectangular(
        npix_x=CAMERA_PIXELS_PER_SIDE,
        npix_y=CAMERA_PIXELS_PER_SIDE,
        range_x=(-half, half),
        range_y=(-half, half),
    )
    geometry.name = "ToyCam"
    readout = CameraReadout(
        name="ToyCam",
        sampling_rate=u.Quantity(1.0, u.GHz),
        reference_pulse_shape=np.array([[0.0, 0.5, 1.0, 0.5, 0.0]]),
        reference_pulse_sample_width=u.Quantity(1.0, u.ns),
        n_channels=1,
        n_pixels=geometry.n_pixels,
        n_samples=25,
    )
    optics = OpticsDescription(
        name="MST",
        size_type=SizeType.MST,
        n_mirrors=1,
        equivalent_focal_length=FOCAL_LENGTH,
        effective_focal_length=FOCAL_LENGTH,
        mirror_area=u.Quantity(100.0, u.m**2),
        n_mirror_tiles=86,
        reflector_shape=ReflectorShape.HYBRID,
    )
    telescope = TelescopeDescription(
        name="MST", optics=optics, camera=CameraDescription("ToyCam", geometry, readout)
    )
    positions = {tel_id: u.Quantity(xyz, u.m) for tel_id, xyz in TELESCOPE_POSITIONS_M.items()}
    return SubarrayDescription(
        "gridpipe-toy-array",
        tel_positions=positions,
        tel_descriptions=dict.fromkeys(positions, telescope),
        reference_location=SITE,
    )
