"""Apply trained models to selected images and combine telescopes into one value per event.

Each image gets its own estimate from the model of its camera type; an event's value is the
intensity-weighted mean over its images (energies are averaged in log10).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gridpipe.payloads.demo.h5io import InputFileError
from gridpipe.payloads.demo.linear import LinearModel, load_model
from gridpipe.payloads.demo.schema import training_dtype
from gridpipe.payloads.demo.selection import Images, event_key


def find_models(
    directory: Path, kind: str, cam_ids: tuple[str, ...], method: str | None
) -> dict[str, LinearModel]:
    """Load `{kind}_{cam}_{method}.npz` per camera from `directory` (method optional if only one exists)."""
    if not directory.is_dir():
        raise InputFileError(
            f"{directory}: {kind} directory not found; train the models with train-model first"
        )
    models = {}
    for cam in cam_ids:
        pattern = f"{kind}_{cam}_{method}.npz" if method else f"{kind}_{cam}_*.npz"
        found = sorted(directory.glob(pattern))
        if not found:
            raise InputFileError(f"{directory}: no {pattern}; train the {kind} for {cam} first")
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputFileError(
                f"{directory}: several {kind}s for {cam} ({names}); choose one with --{kind}-method"
            )
        model = load_model(found[0])
        if model.kind != kind or model.cam_id != cam:
            raise InputFileError(
                f"{found[0]}: holds a {model.kind} for {model.cam_id}, expected a {kind} for {cam}"
            )
        models[cam] = model
    return models


def _check_features(model: LinearModel, rows: np.ndarray, cam: str) -> None:
    missing = [f for f in model.features if f not in (rows.dtype.names or ())]
    if missing:
        raise InputFileError(f"the {model.kind} of {cam} needs {', '.join(missing)}, which the images lack")


def combine(images: Images, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted event keys and the intensity-weighted mean of the per-image `values` of each event."""
    cams = [cam for cam in images if len(images[cam])]
    if not cams:
        return event_key(np.empty(0, dtype=[("obs_id", "<i8"), ("event_id", "<i8")])), np.empty(0)
    keys = np.concatenate([event_key(images[cam]) for cam in cams])
    weight = np.concatenate([np.asarray(images[cam]["hillas_intensity"], np.float64) for cam in cams])
    value = np.concatenate([values[cam] for cam in cams])
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inverse, weights=weight * value) / np.bincount(inverse, weights=weight)


def per_image(images: Images, keys: np.ndarray, event_values: np.ndarray) -> dict[str, np.ndarray]:
    """Spread one value per event (aligned with sorted `keys`) back onto every image of that event."""
    return {cam: event_values[np.searchsorted(keys, event_key(rows))] for cam, rows in images.items()}


def reco_energy(images: Images, regressors: dict[str, LinearModel]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted event keys and the reconstructed energy (TeV) of each event."""
    logs = {}
    for cam, rows in images.items():
        _check_features(regressors[cam], rows, cam)
        logs[cam] = np.log10(np.clip(regressors[cam].predict(rows), 1e-6, None)) if len(rows) else np.empty(0)
    keys, mean_log = combine(images, logs)
    return keys, 10.0**mean_log


def gammaness(images: Images, classifiers: dict[str, LinearModel]) -> tuple[np.ndarray, np.ndarray]:
    """Event keys and gammaness in [0, 1] per event."""
    probs = {}
    for cam, rows in images.items():
        _check_features(classifiers[cam], rows, cam)
        probs[cam] = classifiers[cam].predict(rows) if len(rows) else np.empty(0)
    keys, mean = combine(images, probs)
    return keys, np.clip(mean, 0.0, 1.0)


def add_reco_energy(images: Images, regressors: dict[str, LinearModel]) -> Images:
    """Copies of `images` with the event-level `reco_energy` (TeV) column added."""
    keys, energy = reco_energy(images, regressors)
    spread = per_image(images, keys, energy)
    out: Images = {}
    for cam, rows in images.items():
        table = np.zeros(len(rows), dtype=training_dtype(True))
        for name in rows.dtype.names or ():
            table[name] = rows[name]
        table["reco_energy"] = spread[cam]
        out[cam] = table
    return out


def event_column(images: Images, name: str) -> np.ndarray:
    """One value per event (sorted like `combine`'s keys) of an event-level column such as true_energy."""
    cams = [cam for cam in images if len(images[cam])]
    if not cams:
        return np.empty(0)
    keys = np.concatenate([event_key(images[cam]) for cam in cams])
    values = np.concatenate([images[cam][name] for cam in cams])
    _, first = np.unique(keys, return_index=True)
    return values[first]
