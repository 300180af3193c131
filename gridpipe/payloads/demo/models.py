"""`train-model`: fit the demo's energy regressor or gamma/hadron classifier per camera type.

Honest note: whatever Method.name says (e.g. RandomForestRegressor), the demo fits a light model
(polynomial least squares or logistic regression, see linear.py); the file name keeps the method so
that the rest of the workflow finds it, and the file's `algorithm` entry says what it really is.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gridpipe.core.exceptions import ConfigError, UsageError
from gridpipe.core.fsutil import atomic_write_text
from gridpipe.payloads.demo import linear
from gridpipe.payloads.demo.config import ModelSettings, load_model_config
from gridpipe.payloads.demo.h5io import FILE_MODE, InputFileError, open_input, read_table
from gridpipe.payloads.demo.scores import classifier_scores, regressor_scores, split_by_event

MIN_IMAGES = 30
"""Fewest images per camera type a model is fitted on."""


def _tables(path: Path, settings: ModelSettings, config_file: Path) -> dict[str, np.ndarray]:
    with open_input(path) as h5:
        cams = settings.cam_ids or tuple(
            sorted(node._v_name for node in h5.list_nodes("/", classname="Table"))
        )
        tables = {cam: read_table(h5, f"/{cam}") for cam in cams}
    if not tables:
        raise InputFileError(f"{path}: holds no camera tables; is it a training file?")
    needed = (
        (*settings.features, settings.target) if settings.model_type == "regressor" else settings.features
    )
    for cam, rows in tables.items():
        missing = [name for name in needed if name not in (rows.dtype.names or ())]
        if missing:
            hint = " (reco_energy needs `training --estimate-energy`)" if "reco_energy" in missing else ""
            raise ConfigError(
                config_file,
                f"{', '.join(missing)} not a column of {path}:/{cam}; "
                f"have {', '.join(rows.dtype.names or ())}{hint}",
                key="FeatureList",
            )
        if len(rows) < MIN_IMAGES:
            raise InputFileError(
                f"{path}:/{cam} has {len(rows)} images, fewer than {MIN_IMAGES}; simulate more events"
            )
    return tables


def _fit(
    settings: ModelSettings, cam: str, rows: np.ndarray, y: np.ndarray
) -> tuple[linear.LinearModel, dict]:
    train = split_by_event(rows, settings.train_fraction)
    x = np.column_stack([np.asarray(rows[f], np.float64) for f in settings.features])
    t = linear.transform_for(x[train])
    kind = settings.model_type
    model = linear.LinearModel(
        kind=kind,
        cam_id=cam,
        method_name=settings.method_name,
        features=settings.features,
        log_features=t.log_features,
        mean=t.mean,
        scale=t.scale,
        low=t.low,
        high=t.high,
        coef=np.zeros(1),
        log_target=settings.log_target,
    )
    a = model.design(rows)
    fit = linear.fit_least_squares if kind == "regressor" else linear.fit_logistic
    model = replace(model, coef=fit(a[train], y[train]))
    z = a @ model.coef
    scores = {
        "train": _score(kind, y[train], z[train], y[train]),
        "test": _score(kind, y[~train], z[~train], y[train]),
    }
    return model, {"n_train": int(train.sum()), "n_test": int((~train).sum()), **scores}


def _score(kind: str, y: np.ndarray, z: np.ndarray, y_train: np.ndarray) -> dict[str, float]:
    if kind == "regressor":
        return regressor_scores(y, z, float(np.mean(y_train)))
    return classifier_scores(y, linear.sigmoid(z))


def _columns(rows: np.ndarray, names: list[str]) -> np.ndarray:
    out = np.empty(len(rows), dtype=[(name, "<f8") for name in names])
    for name in names:
        out[name] = rows[name]
    return out


def _targets(
    settings: ModelSettings, sig: np.ndarray, bkg: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if bkg is None:
        y = np.asarray(sig[settings.target], np.float64)
        return sig, np.log10(np.clip(y, 1e-12, None)) if settings.log_target else y
    names = [*settings.features, "obs_id", "event_id"]
    rows = np.concatenate([_columns(sig, names), _columns(bkg, names)])
    return rows, np.concatenate([np.ones(len(sig)), np.zeros(len(bkg))])


def train_model(
    config_file: Path, infile: Path, outdir: Path, bkg_infile: Path | None = None
) -> dict[str, Any]:
    """Fit one model per camera type, write `{type}_{cam}_{method}.npz` and a summary; return the summary."""
    settings = load_model_config(config_file)
    if settings.model_type == "classifier" and bkg_infile is None:
        raise UsageError("a classifier needs --bkg-infile (the proton training file)")
    if settings.model_type == "regressor" and bkg_infile is not None:
        raise UsageError("--bkg-infile is only for classifiers; drop it for the regressor")
    sig = _tables(infile, settings, config_file)
    bkg = _tables(bkg_infile, settings, config_file) if bkg_infile is not None else None
    summary: dict[str, Any] = {
        "model_type": settings.model_type,
        "method_name": settings.method_name,
        "algorithm": linear.ALGORITHMS[settings.model_type],
        "ignored_method_parameters": settings.ignored_parameters,
        "features": list(settings.features),
        "cameras": {},
    }
    for cam, rows in sig.items():
        if bkg is not None and cam not in bkg:
            raise InputFileError(
                f"{bkg_infile}: table '/{cam}' is missing; produce it with the same analysis.yaml"
            )
        data, y = _targets(settings, rows, bkg[cam] if bkg is not None else None)
        model, scores = _fit(settings, cam, data, y)
        linear.save_model(
            model, outdir / f"{settings.model_type}_{cam}_{settings.method}.npz", scores["n_train"]
        )
        summary["cameras"][cam] = scores
    text = yaml.safe_dump(summary, sort_keys=False)
    atomic_write_text(outdir / f"{settings.model_type}_{settings.method}_summary.yaml", text, mode=FILE_MODE)
    return summary
