"""Small synthetic event files for ctapipe, made offline with ctapipe's own data model and DataWriter.

No sim_telarray file and no download: showers are drawn from a power law, their axis is projected into
each telescope's camera with ctapipe's coordinate frames, and each image is a toy-model skewed Gaussian
along that projection (so that ctapipe's Hillas reconstruction finds the direction and core again).
Gammas make narrow bright images, protons wide dim irregular ones, electrons look like gammas. The
files are "DL1 ready": they hold DL1 images, the simulated shower, true impact parameters, the array
pointing and an observation block in AltAz, and the simulation configuration with the thrown-shower
histogram, which is everything ctapipe-process and the IRF tools read from a simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np

from gridpipe.payloads.ctapipe.instrument import CAMERA_HALF_WIDTH_M, FOCAL_LENGTH, toy_subarray

POINTING_ALT_DEG = 70.0
POINTING_AZ_DEG = 0.0
PRIMARY_ID = {"gamma": 0, "electron": 1, "proton": 101}


@dataclass(frozen=True)
class Population:
    """How one kind of particle is thrown and how bright and wide its images are."""

    energy_tev: tuple[float, float]
    viewcone_deg: tuple[float, float]
    max_scatter_m: float
    photons_per_tev: float
    width_scale: float
    fluctuation: float


POPULATIONS = {
    "gamma": Population((0.1, 100.0), (0.0, 0.0), 350.0, 300.0, 1.0, 0.15),
    "gamma_diffuse": Population((0.1, 100.0), (0.0, 3.0), 350.0, 300.0, 1.0, 0.15),
    "electron": Population((0.1, 100.0), (0.0, 3.0), 350.0, 300.0, 1.05, 0.2),
    "proton": Population((0.2, 200.0), (0.0, 5.0), 500.0, 150.0, 2.2, 0.5),
}
"""Point-like gammas (`gamma`), diffuse gammas, electrons and protons."""
SPECTRAL_INDEX = -2.0
TRIGGER_PE = 50.0
NSB_PE = 2.0
SKEWNESS = 0.3
_PIXELS: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_ACTIVITY: list[bool] = []


def _pixels(camera: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel x, y (m) and areas (m²) of a camera geometry, as plain arrays (computed once)."""
    key = id(camera)
    if key not in _PIXELS:
        _PIXELS[key] = (
            camera.pix_x.to_value(u.m),
            camera.pix_y.to_value(u.m),
            camera.pix_area.to_value(u.m**2),
        )
    return _PIXELS[key]


@dataclass(frozen=True)
class SyntheticFile:
    """What `write_synthetic_file` wrote."""

    path: Path
    thrown: int
    events: int
    telescope_events: int


def _thrown_showers(pop: Population, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Energies (TeV), directions (deg) and cores (m) of `n` thrown showers."""
    e_lo, e_hi = pop.energy_tev
    g = SPECTRAL_INDEX + 1
    energy = (e_lo**g + rng.uniform(size=n) * (e_hi**g - e_lo**g)) ** (1 / g)
    lo, hi = np.radians(pop.viewcone_deg)
    offset = np.degrees(np.arccos(np.cos(lo) - rng.uniform(size=n) * (np.cos(lo) - np.cos(hi))))
    angle = rng.uniform(0, 2 * np.pi, n)
    alt = POINTING_ALT_DEG + offset * np.cos(angle)
    az = POINTING_AZ_DEG + offset * np.sin(angle) / np.cos(np.radians(POINTING_ALT_DEG))
    radius = pop.max_scatter_m * np.sqrt(rng.uniform(size=n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return {
        "energy": energy,
        "alt": alt,
        "az": az % 360,
        "core_x": radius * np.cos(phi),
        "core_y": radius * np.sin(phi),
        "h_max": 10_000.0 - 1_000.0 * np.log10(energy) + rng.normal(0, 300, n),
    }


def _axis_direction(alt_deg: np.ndarray, az_deg: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 3) towards alt/az in ctapipe's GroundFrame (x north, y west, z up)."""
    alt, az = np.radians(alt_deg), np.radians(az_deg)
    return np.stack([np.cos(alt) * np.cos(az), -np.cos(alt) * np.sin(az), np.sin(alt)], axis=-1)


def _to_camera(alt_deg: np.ndarray, az_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera x, y (m) of sky directions, for a telescope pointing like the array."""
    from astropy.coordinates import AltAz, SkyCoord
    from ctapipe.coordinates import CameraFrame

    pointing = SkyCoord(alt=POINTING_ALT_DEG * u.deg, az=POINTING_AZ_DEG * u.deg, frame=AltAz())
    sky = SkyCoord(alt=alt_deg * u.deg, az=az_deg * u.deg, frame=AltAz())
    cam = sky.transform_to(CameraFrame(focal_length=FOCAL_LENGTH, telescope_pointing=pointing))
    return cam.x.to_value(u.m), cam.y.to_value(u.m)


def _geometry(showers: dict[str, np.ndarray], tel_xyz: np.ndarray) -> dict[str, np.ndarray]:
    """Per shower and telescope: impact distance (m) and camera positions of the image centroid (the
    shower maximum) and of the source (where the image axis points)."""
    axis = _axis_direction(showers["alt"], showers["az"])  # (n, 3)
    core = np.stack([showers["core_x"], showers["core_y"], np.zeros_like(showers["core_x"])], axis=-1)
    shower_max = core + axis * (showers["h_max"] / axis[:, 2])[:, None]  # (n, 3)
    rel = tel_xyz[None, :, :] - core[:, None, :]  # (n, t, 3)
    along = np.einsum("ntk,nk->nt", rel, axis)
    impact = np.linalg.norm(rel - along[..., None] * axis[:, None, :], axis=-1)
    seen = shower_max[:, None, :] - tel_xyz[None, :, :]
    dist = np.linalg.norm(seen, axis=-1)
    alt = np.degrees(np.arcsin(seen[..., 2] / dist))
    az = np.degrees(np.arctan2(-seen[..., 1], seen[..., 0])) % 360
    cog_x, cog_y = _to_camera(alt.ravel(), az.ravel())
    src_x, src_y = _to_camera(showers["alt"], showers["az"])
    shape = impact.shape
    return {
        "impact": impact,
        "cog_x": cog_x.reshape(shape),
        "cog_y": cog_y.reshape(shape),
        "src_x": np.repeat(src_x[:, None], shape[1], axis=1),
        "src_y": np.repeat(src_y[:, None], shape[1], axis=1),
    }


def _intensity(
    pop: Population, energy: np.ndarray, impact: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    pool = np.where(impact < 120.0, 1.0, np.exp(-(impact - 120.0) / 60.0))
    return pop.photons_per_tev * energy[:, None] * pool * rng.lognormal(0.0, pop.fluctuation, impact.shape)


class _Header:
    """What ctapipe's DataWriter reads from an event source: the file-level information of a run."""

    is_simulation = True

    def __init__(self, subarray: Any, obs_id: int, particle: str, pop: Population, thrown: int) -> None:
        from astropy.time import Time
        from ctapipe.containers import (
            CoordinateFrameType,
            ObservationBlockContainer,
            ObservationBlockState,
            ObservingMode,
            PointingMode,
            SchedulingBlockContainer,
            SchedulingBlockType,
            SimulationConfigContainer,
        )

        self.subarray = subarray
        self.obs_ids = [obs_id]
        self.atmosphere_density_profile = None
        start = Time("2026-01-01T00:00:00", scale="utc")
        self.scheduling_blocks = {
            obs_id: SchedulingBlockContainer(
                sb_id=np.uint64(obs_id),
                sb_type=SchedulingBlockType.OBSERVATION,
                producer_id="gridpipe synthetic",
                observing_mode=ObservingMode.UNKNOWN,
                pointing_mode=PointingMode.DRIFT,
            )
        }
        self.observation_blocks = {
            obs_id: ObservationBlockContainer(
                obs_id=np.uint64(obs_id),
                sb_id=np.uint64(obs_id),
                producer_id="gridpipe synthetic",
                state=ObservationBlockState.COMPLETED_SUCCEDED,
                subarray_pointing_lat=POINTING_ALT_DEG * u.deg,
                subarray_pointing_lon=POINTING_AZ_DEG * u.deg,
                subarray_pointing_frame=CoordinateFrameType.ALTAZ,
                actual_start_time=start,
                scheduled_start_time=start,
            )
        }
        diffuse = pop.viewcone_deg[1] > 0
        self.simulation_config = {
            obs_id: SimulationConfigContainer(
                run_number=obs_id,
                energy_range_min=pop.energy_tev[0] * u.TeV,
                energy_range_max=pop.energy_tev[1] * u.TeV,
                prod_site_alt=2150 * u.m,
                spectral_index=SPECTRAL_INDEX,
                shower_prog_id=1,
                detector_prog_id=1,
                n_showers=thrown,
                shower_reuse=1,
                max_alt=np.radians(POINTING_ALT_DEG) * u.rad,
                min_alt=np.radians(POINTING_ALT_DEG) * u.rad,
                max_az=np.radians(POINTING_AZ_DEG) * u.rad,
                min_az=np.radians(POINTING_AZ_DEG) * u.rad,
                diffuse=diffuse,
                max_viewcone_radius=pop.viewcone_deg[1] * u.deg,
                min_viewcone_radius=pop.viewcone_deg[0] * u.deg,
                max_scatter_range=pop.max_scatter_m * u.m,
                min_scatter_range=0.0 * u.m,
                core_pos_mode=1,
                atmosphere=1,
            )
        }
        self.particle = particle


def _shower_histogram(obs_id: int, pop: Population, showers: dict[str, np.ndarray]) -> Any:
    from ctapipe.containers import SimulatedShowerDistribution

    e_bins = np.geomspace(*pop.energy_tev, 31)
    r_bins = np.linspace(0.0, pop.max_scatter_m, 11)
    hist, _, _ = np.histogram2d(
        showers["energy"], np.hypot(showers["core_x"], showers["core_y"]), bins=[e_bins, r_bins]
    )
    return SimulatedShowerDistribution(
        obs_id=obs_id,
        hist_id=1,
        n_entries=len(showers["energy"]),
        bins_energy=e_bins * u.TeV,
        bins_core_dist=r_bins * u.m,
        histogram=hist,
    )


def write_synthetic_file(
    particle: str, obs_id: int, thrown: int, output: Path, seed: int | None = None
) -> SyntheticFile:
    """Throw `thrown` showers of `particle` (gamma, gamma_diffuse, proton, electron) and write the events
    that trigger at least two telescopes to `output` (an HDF5 file ctapipe-process reads)."""
    from ctapipe.core import Provenance
    from ctapipe.io import DataWriter

    pop = POPULATIONS[particle]
    rng = np.random.default_rng(obs_id if seed is None else seed)
    subarray = toy_subarray()
    tel_ids = list(subarray.tel_ids)
    tel_xyz = subarray.tel_coords.cartesian.xyz.to_value(u.m).T
    showers = _thrown_showers(pop, thrown, rng)
    geom = _geometry(showers, tel_xyz)
    intensity = _intensity(pop, showers["energy"], geom["impact"], rng)
    inside = (np.abs(geom["cog_x"]) < CAMERA_HALF_WIDTH_M - 0.1) & (
        np.abs(geom["cog_y"]) < CAMERA_HALF_WIDTH_M - 0.1
    )
    triggered = (intensity > TRIGGER_PE) & inside
    keep = np.flatnonzero(triggered.sum(axis=1) >= 2)
    header = _Header(subarray, obs_id, particle, pop, thrown)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not _ACTIVITY:
        # outside a Tool, DataWriter records its output in the current provenance activity; one per process
        # (starting one reads the metadata of every installed package)
        Provenance().start_activity("gridpipe synthetic events")
        _ACTIVITY.append(True)
    n_tel_events = 0
    with DataWriter(
        event_source=header,
        output_path=output,
        overwrite=True,
        write_dl1_images=True,
        write_dl1_parameters=False,
        write_dl2=False,
    ) as writer:
        for event_id, i in enumerate(keep, start=1):
            event = _event(
                header, pop, particle, obs_id, event_id, i, showers, geom, intensity, triggered, tel_ids, rng
            )
            n_tel_events += len(event.trigger.tels_with_trigger)
            writer(event)
        writer.write_simulated_shower_distributions({1: _shower_histogram(obs_id, pop, showers)})
    return SyntheticFile(output, thrown, len(keep), n_tel_events)


def _event(
    header: _Header,
    pop: Population,
    particle: str,
    obs_id: int,
    event_id: int,
    i: int,
    showers: dict[str, np.ndarray],
    geom: dict[str, np.ndarray],
    intensity: np.ndarray,
    triggered: np.ndarray,
    tel_ids: list[int],
    rng: np.random.Generator,
) -> Any:
    from astropy.time import Time
    from ctapipe.containers import (
        ArrayEventContainer,
        ArrayPointingContainer,
        DL1CameraContainer,
        EventIndexContainer,
        EventType,
        SimulatedCameraContainer,
        SimulatedEventContainer,
        SimulatedShowerContainer,
        TelescopeImpactParameterContainer,
        TelescopePointingContainer,
        TelescopeTriggerContainer,
        TriggerContainer,
    )

    time = Time("2026-01-01T00:00:00", scale="utc") + event_id * u.s
    with_trigger = [tel_id for j, tel_id in enumerate(tel_ids) if triggered[i, j]]
    shower = SimulatedShowerContainer(
        energy=showers["energy"][i] * u.TeV,
        alt=showers["alt"][i] * u.deg,
        az=showers["az"][i] * u.deg,
        core_x=showers["core_x"][i] * u.m,
        core_y=showers["core_y"][i] * u.m,
        h_first_int=(showers["h_max"][i] + 8000.0) * u.m,
        x_max=300.0 * u.g / u.cm**2,
        starting_grammage=0.0 * u.g / u.cm**2,
        shower_primary_id=PRIMARY_ID[particle.split("_")[0]],
    )
    event = ArrayEventContainer(
        index=EventIndexContainer(obs_id=obs_id, event_id=event_id),
        simulation=SimulatedEventContainer(shower=shower),
        trigger=TriggerContainer(
            time=time,
            tels_with_trigger=np.array(with_trigger, dtype=np.uint16),
            event_type=EventType.SUBARRAY,
            tel={tel_id: TelescopeTriggerContainer(time=time) for tel_id in with_trigger},
        ),
        count=event_id - 1,
    )
    event.monitoring.pointing = ArrayPointingContainer(
        array_altitude=np.radians(POINTING_ALT_DEG) * u.rad, array_azimuth=np.radians(POINTING_AZ_DEG) * u.rad
    )
    for j, tel_id in enumerate(tel_ids):
        if not triggered[i, j]:
            continue
        image, true_image, peak_time = _image(header, pop, tel_id, i, j, geom, intensity, rng)
        event.dl1.tel[tel_id] = DL1CameraContainer(image=image, peak_time=peak_time)
        event.simulation.tel[tel_id] = SimulatedCameraContainer(
            true_image_sum=np.int32(true_image.sum()),
            true_image=true_image,
            impact=TelescopeImpactParameterContainer(
                distance=geom["impact"][i, j] * u.m, distance_uncert=0 * u.m, prefix="true_impact"
            ),
        )
        event.monitoring.tel[tel_id].pointing = TelescopePointingContainer(
            altitude=np.radians(POINTING_ALT_DEG) * u.rad, azimuth=np.radians(POINTING_AZ_DEG) * u.rad
        )
    return event


def _image(
    header: _Header,
    pop: Population,
    tel_id: int,
    i: int,
    j: int,
    geom: dict[str, np.ndarray],
    intensity: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A toy-model image (and peak times) along the projected shower axis: a skewed Gaussian (split
    normal along the axis) as in ctapipe.image.toymodel, computed with numpy (ctapipe's own builds scipy
    distributions per image, ten times slower), Poisson signal plus Poisson night-sky background."""
    camera = header.subarray.tel[tel_id].camera.geometry
    cog_x, cog_y = geom["cog_x"][i, j], geom["cog_y"][i, j]
    psi = np.arctan2(cog_y - geom["src_y"][i, j], cog_x - geom["src_x"][i, j])
    m_per_deg = FOCAL_LENGTH.to_value(u.m) * np.pi / 180
    size = np.log10(max(intensity[i, j], 1.0))
    length = (0.15 + 0.08 * size + 0.0008 * geom["impact"][i, j]) * m_per_deg
    width = (0.07 + 0.02 * size) * pop.width_scale * m_per_deg * rng.lognormal(0, 0.1 * pop.width_scale)
    length = max(length, width * 1.05)
    pix_x, pix_y, area = _pixels(camera)
    dx, dy = pix_x - cog_x, pix_y - cog_y
    along = dx * np.cos(psi) + dy * np.sin(psi)
    across = -dx * np.sin(psi) + dy * np.cos(psi)
    sigma_along = np.where(along > 0, length * (1 + SKEWNESS), length * (1 - SKEWNESS))
    pdf = np.exp(-0.5 * ((along / sigma_along) ** 2 + (across / width) ** 2)) / (2 * np.pi * length * width)
    signal = rng.poisson(intensity[i, j] * pdf * area)
    noise = rng.poisson(NSB_PE, camera.n_pixels)
    image = signal + noise - noise.mean()
    gradient = (2.0 + 0.02 * geom["impact"][i, j]) * u.ns / u.m
    peak_time = along * gradient.to_value(u.ns / u.m) + 10.0 + rng.normal(0, 0.5, camera.n_pixels)
    return image.astype(np.float32), signal.astype(np.int32), peak_time.astype(np.float32)
