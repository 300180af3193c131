"""`simulate`: write one synthetic simulation file (the demo's stand-in for a simtel file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridpipe.core.exceptions import UsageError
from gridpipe.payloads.demo import toymodel as tm
from gridpipe.payloads.demo.h5io import atomic_h5, write_table
from gridpipe.payloads.demo.schema import IMAGE_DTYPE, SIM_EVENT_DTYPE, TELESCOPE_DTYPE

GENERATOR = "gridpipe demo toy model (not an air-shower simulation)"


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate_file` wrote: the file, its events and images per camera type."""

    path: Path
    n_events: int
    n_images: dict[str, int]


def _check(particle: str, run: int, n_events: int, seed: int) -> None:
    if particle not in tm.PARTICLES:
        raise UsageError(f"--particle {particle!r}: choose one of {', '.join(tm.PARTICLES)}")
    if run < 0 or n_events < 1 or seed < 0:
        raise UsageError("--run and --seed must be >= 0 and --events >= 1")


def _telescopes() -> np.ndarray:
    tel_ids, cams, xs, ys = tm.telescope_layout()
    rows = np.zeros(len(tel_ids), dtype=TELESCOPE_DTYPE)
    rows["tel_id"], rows["cam_id"], rows["pos_x"], rows["pos_y"] = tel_ids, cams, xs, ys
    return rows


def _images(
    rng: np.random.Generator, events: np.ndarray, model: tm.ParticleModel
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Images of every (event, telescope) pair that triggers, per camera type; images per event."""
    tel_ids, cams, xs, ys = tm.telescope_layout()
    pe_per_tev = np.array([tm.CAMERAS[c].pe_per_tev for c in cams])
    energy = events["true_energy"][:, None]
    dist = np.hypot(events["true_core_x"][:, None] - xs, events["true_core_y"][:, None] - ys)
    intensity = tm.mean_intensity(energy, dist, pe_per_tev, model.light_yield)
    intensity = intensity * np.exp(rng.normal(0.0, model.intensity_sigma, intensity.shape))
    h_max_true = np.broadcast_to(events["true_h_max"][:, None].astype(np.float64), dist.shape)
    ev, tel = np.nonzero(intensity >= tm.TRIGGER_PE)
    shapes = tm.image_shapes(rng, intensity[ev, tel], dist[ev, tel], h_max_true[ev, tel], model)
    rows = np.zeros(len(ev), dtype=IMAGE_DTYPE)
    rows["obs_id"], rows["event_id"], rows["tel_id"] = (
        events["obs_id"][ev],
        events["event_id"][ev],
        tel_ids[tel],
    )
    rows["hillas_intensity"] = intensity[ev, tel]
    for name, values in shapes.items():
        rows[name] = values
    rows["hillas_ellipticity"] = rows["hillas_width"] / rows["hillas_length"]
    reco_h_max = events["true_h_max"] + rng.normal(0.0, 250.0, len(events))
    rows["h_max"] = reco_h_max[ev]
    d = dist[ev, tel]
    rows["impact_dist"] = np.maximum(
        1.0, d * (1.0 + rng.normal(0.0, 0.05, len(ev))) + rng.normal(0.0, 5.0, len(ev))
    )
    cam_of = np.array(cams)[tel]
    per_cam = {cam: rows[cam_of == cam] for cam in tm.CAMERAS}
    return per_cam, np.bincount(ev, minlength=len(events))


def simulate_events(
    particle: str, run: int, n_events: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Simulated showers and their images per camera type; the same (particle, run, seed) gives the same."""
    _check(particle, run, n_events, seed)
    model = tm.PARTICLES[particle]
    rng = np.random.default_rng([seed, run, tm.PARTICLE_IDS[particle]])
    events = np.zeros(n_events, dtype=SIM_EVENT_DTYPE)
    events["obs_id"], events["event_id"] = run, np.arange(1, n_events + 1)
    events["true_particle_id"] = tm.PARTICLE_IDS[particle]
    events["true_energy"] = tm.power_law(rng, n_events, model)
    radius = model.max_impact_m * np.sqrt(rng.random(n_events))
    phi = rng.random(n_events) * 2 * np.pi
    events["true_core_x"], events["true_core_y"] = radius * np.cos(phi), radius * np.sin(phi)
    events["true_h_max"] = tm.shower_max(rng, events["true_energy"], model)
    images, per_event = _images(rng, events, model)
    events["n_images"] = per_event
    return events, images


def simulate_file(particle: str, run: int, n_events: int, seed: int, output: Path) -> SimulationResult:
    """Write one simulation file (HDF5) for `n_events` showers of `particle`, atomically."""
    events, images = simulate_events(particle, run, n_events, seed)
    model = tm.PARTICLES[particle]
    with atomic_h5(output, title=f"gridpipe demo simulation: {particle} run {run}") as h5:
        attrs = h5.root._v_attrs
        attrs.obs_id, attrs.run, attrs.particle, attrs.seed = run, run, particle, seed
        attrs.particle_id, attrs.n_events, attrs.generator = tm.PARTICLE_IDS[particle], n_events, GENERATOR
        attrs.spectral_index, attrs.energy_min_tev, attrs.energy_max_tev = (
            model.index,
            model.e_min_tev,
            model.e_max_tev,
        )
        attrs.max_impact_m, attrs.diffuse_deg = model.max_impact_m, model.diffuse_deg
        write_table(h5, "/simulation", "events", events, "simulated showers")
        write_table(h5, "/subarray", "telescopes", _telescopes(), "telescope layout")
        for cam, rows in images.items():
            write_table(h5, "/images", cam, rows, f"parametrised images of {cam}")
    return SimulationResult(output, n_events, {cam: len(rows) for cam, rows in images.items()})
