"""Read simulation files and apply analysis.yaml's image selection and minimum telescope multiplicity."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from gridpipe.payloads.demo.config import IMAGE_CUTS, AnalysisSettings
from gridpipe.payloads.demo.h5io import InputFileError, concat, open_input, read_table
from gridpipe.payloads.demo.schema import training_dtype
from gridpipe.payloads.demo.toymodel import CAMERAS

Images = dict[str, np.ndarray]
"""Selected images per camera type (rows of `training_dtype`)."""


def _quantity(rows: np.ndarray, name: str, cam: str) -> np.ndarray:
    if name == "nominal_distance":
        return rows["hillas_r"] / CAMERAS[cam].fov_radius_deg
    return rows[name]


def image_mask(rows: np.ndarray, cam: str, settings: AnalysisSettings) -> np.ndarray:
    """True for images passing every ImageSelection cut (nominal distance in camera radii)."""
    keep = np.ones(len(rows), dtype=bool)
    for key, (low, high) in settings.cuts.items():
        value = _quantity(rows, IMAGE_CUTS[key], cam)
        keep &= (value >= low) & (value <= high)
    return keep


def event_key(rows: np.ndarray) -> np.ndarray:
    """One int64-pair key per row, (obs_id, event_id), as a structured array usable by np.unique."""
    key = np.empty(len(rows), dtype=[("obs_id", "<i8"), ("event_id", "<i8")])
    key["obs_id"], key["event_id"] = rows["obs_id"], rows["event_id"]
    return key


def _read_file(path: Path, cam_ids: tuple[str, ...], seen: dict[int, Path]) -> tuple[np.ndarray, Images]:
    """Events and raw images of one simulation file; its runs must not appear in an earlier file."""
    with open_input(path) as h5:
        events = read_table(h5, "/simulation/events")
        raw = {cam: read_table(h5, f"/images/{cam}") for cam in cam_ids}
    for run in np.unique(events["obs_id"]).tolist():
        if run in seen:
            raise InputFileError(f"{path}: run {run} is also in {seen[run]}; give every run once")
        seen[run] = path
    return events, raw


def _select_file(events: np.ndarray, raw: Images, settings: AnalysisSettings, path: Path) -> Images:
    kept = {cam: rows[image_mask(rows, cam, settings)] for cam, rows in raw.items()}
    ids = np.concatenate([rows["event_id"] for rows in kept.values()])
    uniq, counts = np.unique(ids, return_counts=True)
    order = np.argsort(events["event_id"])
    out: Images = {}
    for cam, rows in kept.items():
        n_tel = counts[np.searchsorted(uniq, rows["event_id"])] if len(rows) else np.empty(0, np.int64)
        rows, n_tel = rows[n_tel >= settings.min_tel], n_tel[n_tel >= settings.min_tel]
        where = order[np.searchsorted(events["event_id"], rows["event_id"], sorter=order)]
        if len(rows) and np.any(events["event_id"][where] != rows["event_id"]):
            raise InputFileError(
                f"{path}: images of /images/{cam} refer to events missing from /simulation/events"
            )
        table = np.zeros(len(rows), dtype=training_dtype(False))
        for name in rows.dtype.names:
            table[name] = rows[name]
        table["n_tel"] = n_tel
        table["true_energy"] = events["true_energy"][where]
        table["true_particle_id"] = events["true_particle_id"][where]
        out[cam] = table
    return out


def select_images(paths: Iterable[Path], settings: AnalysisSettings) -> Images:
    """Selected images of all `paths` per camera type, events with fewer than min_tel images dropped."""
    parts: dict[str, list[np.ndarray]] = {cam: [] for cam in settings.cam_ids}
    seen: dict[int, Path] = {}
    for path in paths:
        events, raw = _read_file(path, settings.cam_ids, seen)
        for cam, rows in _select_file(events, raw, settings, path).items():
            parts[cam].append(rows)
    return {cam: concat(chunks, training_dtype(False)) for cam, chunks in parts.items()}
